"""`ecg up` as a process: Ctrl-C stops both services cleanly; a dying service is restarted
while the other keeps running, and `ecg up` says so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command, wait_for


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(tmp_path: Path) -> tuple[ManagedProcess, int, int]:
    backend_port, ml_port = free_port(), free_port()
    proc = ManagedProcess(
        ecg_command("up", "--backend-port", str(backend_port), "--ml-port", str(ml_port)),
        env={"ECG_DATA_DIR": str(tmp_path / "data")},
        inherit_env=False,
        log_path=tmp_path / "ecg-up.log",
        name="ecg up",
    )
    proc.start()
    proc.wait_until(lambda: "ecg up: ready" in proc.log_text(), timeout_s=240, what="ready")
    return proc, backend_port, ml_port


def test_ctrl_c_stops_both_services(tmp_path: Path) -> None:
    proc, backend_port, ml_port = _start(tmp_path)
    try:
        log = proc.log_text()
        assert f"web page:  http://127.0.0.1:{backend_port}/" in log
        assert f"API docs:  http://127.0.0.1:{backend_port}/docs" in log
        assert f"ML server: http://127.0.0.1:{ml_port}/health" in log
        children = _children(proc.pid)
        assert len(children) == 2, children
        proc.signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
        assert proc.wait_exit(timeout_s=40) == 0, proc.log_tail()
    finally:
        proc.stop()
    assert "SIGINT received, stopping" in proc.log_text()
    wait_for(
        lambda: not any(Path(f"/proc/{p}").exists() for p in children),
        timeout_s=10,
        what="both services to exit",
    )
    assert not _listening(backend_port) and not _listening(ml_port)


def test_a_dead_service_is_restarted_and_the_other_keeps_running(tmp_path: Path) -> None:
    proc, backend_port, ml_port = _start(tmp_path)
    try:
        children = _children(proc.pid)
        ml = next(p for p in children if " ml-server " in _cmdline(p))
        backend = next(p for p in children if " backend " in _cmdline(p))
        os.kill(ml, signal.SIGKILL)
        proc.wait_until(
            lambda: "ecg up: ml-server is healthy again" in proc.log_text(),
            timeout_s=240,
            what="the ML server to be restarted and healthy",
        )
        log = proc.log_text()
        assert "ecg up: ml-server exited with code -9; restarting it" in log
        assert proc.alive() and _listening(ml_port) and _listening(backend_port)
        now = _children(proc.pid)
        assert backend in now and ml not in now and len(now) == 2
        proc.signal(signal.SIGINT)
        assert proc.wait_exit(timeout_s=40) == 0, proc.log_tail()
    finally:
        proc.stop()


def test_ready_means_models_loaded_and_busy_ports_fail_at_once(tmp_path: Path) -> None:
    proc, backend_port, ml_port = _start(tmp_path / "first")
    try:
        # "ready" is said only once the workers hold their models.
        with urllib.request.urlopen(f"http://127.0.0.1:{ml_port}/health", timeout=5) as resp:
            assert json.load(resp)["models_loaded"] is True
        log = proc.log_text()
        assert "webhooks:  signed with whsec_" in log
        # One log format: no alembic narration, uvicorn's lines in the same shape as ours.
        assert "[alembic." not in log and "Context impl" not in log
        assert "INFO:     " not in log
        # A second `ecg up` on the same ports stops at once with one clear line.
        started = time.monotonic()
        second = subprocess.run(
            ecg_command(
                "up",
                "--backend-port",
                str(backend_port),
                "--ml-port",
                str(ml_port),
                python=sys.executable,
            ),
            env={**os.environ, "ECG_DATA_DIR": str(tmp_path / "second")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 3, second
        assert time.monotonic() - started < 20
        assert "ready" not in second.stdout
        err = second.stderr.strip()
        assert "\n" not in err and f"port {backend_port}" in err and "already in use" in err
        assert proc.alive()  # the first one is untouched
    finally:
        proc.stop()
