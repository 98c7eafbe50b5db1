"""The README's two commands in a fresh `git clone`: `make run` sets up from nothing and starts
the system; `make test` sets up and runs tests.

The clone gets its own virtualenv (nothing is borrowed from the working copy). To keep the
recursion bounded, the inner `make test` runs a small smoke selection (`tests/product`) through
PYTEST_ARGS, the Makefile's documented knob; everything else about it is the real command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ManagedProcess

INSTALL_TIMEOUT_S = 1500.0  # a fresh venv: torch, faster-whisper, … from the wheel cache

# Settings from the developer's shell must not leak into the clone's system.
_DROP = (
    "VIRTUAL_ENV",
    "DATABASE_URL",
    "ECG_",
    "S3_",
    "AWS_",
    "ML_",
    "MODEL_SERVER_URL",
    "FASTAPI_BASE_URL",
    "WEBHOOK_SECRET_KEY",
    "SECRET_KEY",
    "PYTEST_",
)


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    venv_bin = str(REPO_ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["ECG_DATA_DIR"] = str(data_dir)
    return env


@pytest.mark.slow
@pytest.mark.timeout(int(INSTALL_TIMEOUT_S * 2 + 600))
def test_make_run_and_make_test_in_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("make and git are needed")
    clone = tmp_path / "ecg"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    assert not (clone / ".venv").exists()
    env = clean_env(tmp_path / "data")

    # 1. make run: set up, start, report ready; SIGTERM stops it (and both services).
    backend_port, ml_port = free_port(), free_port()
    up = ManagedProcess(
        ["make", "run", f"UP_ARGS=--backend-port {backend_port} --ml-port {ml_port}"],
        env=env,
        inherit_env=False,
        cwd=clone,
        log_path=tmp_path / "make-run.log",
        name="make run",
    )
    with up:
        up.wait_until(
            lambda: "ecg up: ready" in up.log_text(),
            timeout_s=INSTALL_TIMEOUT_S,
            what="`make run` to set up and report ready",
        )
        page = httpx.get(f"http://127.0.0.1:{backend_port}/", timeout=10)
        assert page.status_code == 200 and "<title>ECG" in page.text
        health = httpx.get(f"http://127.0.0.1:{backend_port}/api/upload-video/ml-server/health")
        assert health.json()["status"] == "healthy"
        up.stop(timeout_s=40)
    assert "SIGTERM received, stopping" in up.log_text(), up.log_tail()
    assert (clone / ".venv" / "bin" / "ecg").exists()

    # 2. make test: the same setup (already done) plus system tools and services, then pytest.
    test = subprocess.run(
        ["make", "test", "PYTEST_ARGS=tests/product -q -p no:cacheprovider"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    (tmp_path / "make-test.log").write_text(test.stdout + test.stderr, encoding="utf-8")
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    assert " passed" in test.stdout and "failed" not in test.stdout
