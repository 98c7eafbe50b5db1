"""`ecg analyze` as a user runs it (a subprocess): what it can refuse without a server is refused
before any request, several files get progress bars that name each file, `--task translate`
reaches the ML server, and the result and the ASS captions carry the user's file name rather
than the storage key. The backend is real (uvicorn on a socket); the ML server is the fake."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_backend import LiveBackend, live_backend
from tests.support.media import silence
from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ecg_command
from tests.support.results import caption_result


def _cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ecg_command("analyze", *args, python=sys.executable),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONUNBUFFERED": "1", **env},
    )


def test_refusals_before_any_request(tmp_path: Path) -> None:
    # Nothing listens at this backend: a check that needed it would say "cannot reach".
    nowhere = f"http://127.0.0.1:{free_port()}"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video", encoding="utf-8")
    run = _cli(str(notes), "--backend", nowhere, home=tmp_path)
    assert run.returncode == 1
    line = run.stderr.strip()
    assert "\n" not in line and "notes.txt is not a video or audio file" in line, line

    wav = silence(1.0)
    run = _cli(str(wav), "--backend", nowhere, "--min-speakers", "3", "--max-speakers", "2",
               home=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "ecg analyze: error: --min-speakers (3) is over --max-speakers (2)"
    )

    # Several files: the bad one is named before the first one is even tried.
    run = _cli(str(wav), str(notes), "--backend", nowhere, home=tmp_path)
    assert run.returncode == 1
    first, second = run.stderr.strip().splitlines()
    assert "notes.txt is not a video or audio file" in first, run.stderr
    assert "cannot reach the backend" in second, run.stderr


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LiveBackend]:
    """The live backend, its fake ML server finishing each job the way the real one names
    it: the result's metadata.filename is the request's `filename`."""
    with live_backend(tmp_path / "backend") as live:
        stop = threading.Event()

        def finish_jobs() -> None:
            done: set[str] = set()
            while not stop.is_set():
                for job_id in list(live.fake_ml.accepted):
                    if job_id in done:
                        continue
                    done.add(job_id)
                    result = caption_result().to_stored()
                    result["metadata"]["filename"] = live.fake_ml.jobs[job_id].request.filename
                    live.fake_ml.finish(job_id, result)
                time.sleep(0.05)

        worker = threading.Thread(target=finish_jobs, daemon=True)
        worker.start()
        try:
            yield live
        finally:
            stop.set()
            worker.join(timeout=5)


def test_two_files_named_on_bars_translated_and_titled_by_their_names(
    backend: LiveBackend, tmp_path: Path
) -> None:
    first = tmp_path / "My talk.wav"
    second = tmp_path / "other.wav"
    for path in (first, second):
        shutil.copyfile(silence(1.0), path)
    out = tmp_path / "out"
    run = _cli(
        str(first), str(second), "--backend", backend.url, "-o", str(out), "--task", "translate",
        home=tmp_path, FORCE_COLOR="1", COLUMNS="160",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    # Each bar says whose it is (rich draws them on a terminal; FORCE_COLOR makes this one).
    for name in ("My talk.wav", "other.wav"):
        assert f"{name} · upload" in run.stderr and f"{name} · analysis" in run.stderr, name

    requests = {j.request.filename: j.request for j in backend.fake_ml.jobs.values()}
    assert set(requests) == {"My_talk.wav", "other.wav"}  # the upload's name, not the key
    assert all(r.options.task == "translate" for r in requests.values())
    result = json.loads((out / "My talk.json").read_text(encoding="utf-8"))
    assert result["metadata"]["filename"] == "My_talk.wav"
    ass = (out / "My talk.ass").read_text(encoding="utf-8")
    assert "Title: My_talk.wav" in ass.splitlines()


def test_model_chosen_or_refused_before_the_upload(backend: LiveBackend, tmp_path: Path) -> None:
    wav = tmp_path / "talk.wav"
    shutil.copyfile(silence(1.0), wav)
    run = _cli(str(wav), "--backend", backend.url, "--model", "large-v9", "-o", str(tmp_path),
               home=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "ecg analyze: error: --model: the server holds no model 'large-v9'; "
        "it offers: whisper-1, bundled:base, tiny.en, small"
    ), run.stderr
    assert not backend.fake_ml.accepted  # refused before anything was uploaded or started

    run = _cli(str(wav), "--backend", backend.url, "--model", "small", "-o", str(tmp_path),
               home=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    (job,) = backend.fake_ml.jobs.values()
    assert job.request.options.model == "small"
