"""The whole system as `ecg up` starts it, and the CLI as a user runs it: real processes only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ManagedProcess, ecg_command

STARTUP_TIMEOUT_S = 240.0  # the ML server loads its models first; two cores are shared
ANALYZE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class UpStack:
    proc: ManagedProcess
    backend_url: str
    ml_url: str
    data_dir: Path


@contextmanager
def ecg_up(root: Path, env: Mapping[str, str] | None = None) -> Iterator[UpStack]:
    """`ecg up` on free ports with a clean environment plus `env`; stopped with SIGTERM after.

    On leaving, `ecg up` must exit 0 (a clean stop) and both of its children must be gone.
    """
    backend_port, ml_port = free_port(), free_port()
    data_dir = root / "data"
    proc = ManagedProcess(
        ecg_command("up", "--backend-port", str(backend_port), "--ml-port", str(ml_port)),
        # Only PATH/HOME/LANG/TMPDIR from outside: a DATABASE_URL or S3_BUCKET_NAME set in the
        # developer's shell must not turn the embedded-defaults test into something else.
        env={"ECG_DATA_DIR": str(data_dir), **(env or {})},
        inherit_env=False,
        log_path=root / "ecg-up.log",
        name="ecg up",
    )
    with proc:
        proc.wait_until(
            lambda: "ecg up: ready" in proc.log_text(),
            timeout_s=STARTUP_TIMEOUT_S,
            what="`ecg up` to report both services healthy",
        )
        yield UpStack(
            proc=proc,
            backend_url=f"http://127.0.0.1:{backend_port}",
            ml_url=f"http://127.0.0.1:{ml_port}",
            data_dir=data_dir,
        )
        code = proc.stop(timeout_s=40)
        assert code == 0, f"`ecg up` did not stop cleanly ({code})\n{proc.log_tail()}"
        log = proc.log_text()
        assert "SIGTERM received, stopping" in log, proc.log_tail()
        for port in (backend_port, ml_port):
            assert _port_free(port), f"a child of `ecg up` still listens on :{port}"


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@dataclass(frozen=True)
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, Path]

    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.outputs["json"].read_text(encoding="utf-8"))
        return data


def run_analyze(
    backend_url: str,
    video: Path,
    out_dir: Path,
    *extra: str,
    formats: tuple[str, ...] = ("json", "srt", "vtt"),
    timeout_s: float = ANALYZE_TIMEOUT_S,
) -> CliRun:
    """`ecg analyze VIDEO --backend URL --json … --srt … --vtt …` as a subprocess."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {fmt: out_dir / f"{video.stem}.{fmt}" for fmt in formats}
    args = [str(video), "--backend", backend_url, "-o", str(out_dir), *extra]
    for fmt, path in outputs.items():
        args += [f"--{fmt}", str(path)]
    proc = subprocess.run(
        ecg_command("analyze", *args, python=sys.executable),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": "/usr/bin:/bin", "HOME": str(out_dir), "PYTHONUNBUFFERED": "1"},
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr, outputs)
