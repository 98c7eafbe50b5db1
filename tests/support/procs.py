"""Run services as real subprocesses in tests: start, wait until healthy, stop or kill.

Shared by the ML server, end-to-end and fault tests. Typical use:

    port = free_port()           # tests.support.net
    with ManagedProcess(
        ecg_command("ml-server", "--port", str(port)),
        env={"WEBHOOK_SECRET_KEY": "s", "ECG_DATA_DIR": str(tmp)},
        log_path=tmp / "ml.log",
        name="ml-server",
    ) as proc:
        proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
        ...                      # proc.stop() (SIGTERM, then SIGKILL) runs on exit
        proc.kill()              # or kill -9 to simulate a crash; proc.returncode after

- The child runs in its own session (process group), so `stop`/`kill` reach its children too.
- stdout and stderr go to `log_path` (one file, appended); `log_tail()` reads the end, and every
  failure raised here (`ProcessFailed`) includes it, so a test failure shows the service's log.
- `env` is added on top of the current environment (`inherit_env=False` starts from empty but
  keeps PATH and HOME); `PYTHONUNBUFFERED=1` is always set so logs arrive in order.
- `wait_until(predicate, timeout_s=…, what=…)` polls any condition with a deadline; it fails
  early if the process died meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class ProcessFailed(AssertionError):
    """The process exited early or a wait timed out; the message carries the log tail."""


def ecg_command(subcommand: str, *args: str, python: str | None = None) -> list[str]:
    """`ecg <subcommand> …` through this interpreter (works without the console script)."""
    return [python or sys.executable, "-m", "ecg_cli.main", subcommand, *args]


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> None:
    """Poll `predicate` until true; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


class ManagedProcess:
    """One subprocess with its log file; a context manager that always stops it."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path,
        name: str | None = None,
        cwd: Path | None = None,
        inherit_env: bool = True,
    ) -> None:
        self.cmd = list(cmd)
        self.name = name or Path(cmd[0]).name
        self.log_path = log_path
        self.cwd = cwd or REPO_ROOT
        base: dict[str, str] = (
            dict(os.environ)
            if inherit_env
            else {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        )
        self.env = {**base, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ManagedProcess:
        """Start the process (idempotent while it runs)."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.name}: {' '.join(self.cmd)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group."""
        proc = self._require()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM the group, wait up to `timeout_s`, then SIGKILL; return the exit code."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._finish()

    def kill(self) -> int:
        """SIGKILL the group now (simulate a crash); return the exit code."""
        if self._proc is None:
            return 0
        self.signal(signal.SIGKILL)
        self._proc.wait(timeout=10)
        return self._finish()

    def _finish(self) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ waiting

    def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout_s: float,
        what: str,
        interval_s: float = 0.1,
    ) -> None:
        """Poll `predicate`; fail with the log tail on timeout or if the process exits."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(Exception):  # the service may not answer yet; keep polling
                if predicate():
                    return
            if not self.alive():
                raise ProcessFailed(
                    f"{self.name} exited with {self.returncode} while waiting for {what}\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name}: timed out after {timeout_s:g}s waiting for {what}\n"
                    + self.log_tail()
                )
            time.sleep(interval_s)

    def wait_http_ok(self, url: str, *, timeout_s: float = 60.0) -> None:
        """Wait until `GET url` answers 2xx."""

        def ok() -> bool:
            return httpx.get(url, timeout=2.0).is_success

        self.wait_until(ok, timeout_s=timeout_s, what=f"GET {url} to answer 2xx")

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for the process to exit by itself; return its code."""
        try:
            self._require().wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ProcessFailed(
                f"{self.name} still running after {timeout_s:g}s\n" + self.log_tail()
            ) from exc
        return self._finish()

    # ------------------------------------------------------------------ logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} log lines of {self.name} ({self.log_path}):\n" + "\n".join(
            tail
        )

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc
