"""Crash isolation: decoding and analysis run in a child process that holds the models.

A native crash (a segfault inside FFmpeg or a model runtime), a hang or runaway memory while
analysing one job kills at most this child, never the process that serves the API or runs the
Celery task. The parent side (`ChildAnalyser`, one per worker thread or Celery pool process)
sends one job at a time over a pipe and watches the child:

- the child died (signal, exit): a fresh child (models loaded again) retries the job once; a
  second death fails the job `MEDIA_CRASHED`, so a poison file never becomes a crash loop;
- its RSS passed `ML_WORKER_MAX_RSS_MB`: killed, the job fails `MEMORY_LIMIT` (no retry: the
  same media would take the same memory);
- it ran past media duration × `ML_TASK_REALTIME_FACTOR` + `ML_ANALYSIS_OVERHEAD_S`: killed,
  `ANALYSIS_TIMEOUT`;
- a cancel (or shutdown) it does not honour within `CANCEL_GRACE_S`: killed.

The child is a fresh interpreter (`python -m ml_server.executor_child FD`, not a fork: the
parent has threads, and Celery's pool processes may not use `multiprocessing` children) talking
over a socket pair; it loads the models once and serves jobs until it dies or is closed. The
messages each way are the frozen dataclasses of `executor_messages`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from ecg_protocol import AnalysisResult, ErrorCode, Stage
from ml_server.config import MLSettings
from ml_server.executor_messages import (
    CancelJob,
    Configure,
    Duration,
    Failed,
    FromChild,
    JobCancelled,
    Progress,
    Ready,
    Result,
    RunJob,
    Stop,
    ToChild,
)
from ml_server.pipeline.errors import Cancelled, StageError
from ml_server.pipeline.run import PipelineOptions

if TYPE_CHECKING:
    from ml_server.models import Models

logger = logging.getLogger(__name__)

POLL_S = 0.2  # how often the parent checks the child's liveness, RSS and the deadlines
CANCEL_GRACE_S = 30.0  # a child stuck in one native call is killed this long after a cancel
READY_TIMEOUT_S = 600.0  # model loading (a large model from a cold disk)
CRASH_RETRIES = 1

ProgressFn = Callable[[Stage, int], None]
StopFn = Callable[[], bool]


def _never() -> bool:
    return False


def _no_progress(stage: Stage, progress: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Death:
    """Why the child is gone: the job's code, a line for the log and message, retry or not."""

    code: ErrorCode
    reason: str
    retry: bool


class ChildAnalyser:
    """The parent's handle on one analysis child; `analyse` runs one job in it at a time."""

    def __init__(self, settings: MLSettings, *, name: str = "ml-analysis") -> None:
        self._settings = settings
        self._name = name
        self._lock = threading.Lock()  # one job at a time; `close` may come from another thread
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._load_error: str | None = None
        self._died_loading: str | None = None  # how the child died before it was ready
        self._stage = Stage.DECODE  # the stage the running job last reported

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        return self._ready and self.pid is not None

    def start(self) -> None:
        """Start the child now if none is running (it loads the models in the background)."""
        if self._alive():
            return
        self._discard()
        parent, child = socket.socketpair()
        with child:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ml_server.executor_child", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        conn = Connection(parent.detach())
        conn.send(Configure(self._settings.model_dump(mode="json")))
        self._proc, self._conn = proc, conn
        self._ready, self._load_error, self._died_loading = False, None, None
        logger.info("analysis child %s started pid=%s", self._name, proc.pid)

    def wait_ready(
        self, *, timeout_s: float = READY_TIMEOUT_S, should_stop: StopFn = _never
    ) -> bool:
        """Start the child if needed and wait until its models are loaded; False if they failed."""
        self.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready:
            if self._load_error is not None or should_stop() or time.monotonic() > deadline:
                return False
            message = self._receive()
            if message is None:
                if not self._alive():
                    self._died_loading = self._exit_reason()
                    self._load_error = f"the analysis process exited ({self._died_loading})"
                continue
            if isinstance(message, Ready):
                self._ready = message.ok
                self._load_error = None if message.ok else message.error
        return True

    def warm(self, *, should_stop: StopFn = _never) -> bool:
        """Start the child and wait for its models, holding the job lock (any thread)."""
        with self._lock:
            return self.wait_ready(should_stop=should_stop)

    def analyse(
        self,
        media: Path,
        *,
        options: PipelineOptions,
        job_id: str,
        progress: ProgressFn = _no_progress,
        should_cancel: StopFn = _never,
        asr_model: str | None = None,
    ) -> AnalysisResult:
        """Analyse `media` in the child. Raises StageError (with a code) or Cancelled."""
        job = RunJob(job_id, str(media), options, asr_model)
        with self._lock:
            for attempt in range(CRASH_RETRIES + 1):
                death = self._load_models(should_cancel)
                outcome = death or self._run(job, progress, should_cancel)
                if isinstance(outcome, AnalysisResult):
                    return outcome
                logger.error(
                    "job %s: analysis process lost (attempt %d): %s",
                    job_id,
                    attempt + 1,
                    outcome.reason,
                )
                self._discard()
                if should_cancel():  # cancelled or shutting down: no retry, no new child
                    raise Cancelled(self._stage)
                if not outcome.retry or attempt == CRASH_RETRIES:
                    self.start()  # the next job finds fresh models loading or loaded
                    raise StageError(self._stage, outcome.code, outcome.reason)
            raise AssertionError("unreachable")

    def close(self, *, grace_s: float = 5.0) -> None:
        """Ask the child to exit, then kill it if it has not."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if conn is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(Stop())
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
        self._discard()

    # ----------------------------------------------------------------- parent-side helpers

    def _load_models(self, should_cancel: StopFn) -> _Death | None:
        """None once the child is ready; a death counts like one during the analysis."""
        if self.wait_ready(should_stop=should_cancel):
            return None
        if should_cancel():
            raise Cancelled(Stage.DECODE)
        if self._died_loading is not None:
            reason = f"the analysis process died ({self._died_loading})"
            return _Death(ErrorCode.MEDIA_CRASHED, reason, retry=True)
        error = self._load_error or "the models did not load in time"
        self._discard()  # the next job starts a fresh child and tries again
        raise StageError(
            Stage.DECODE, ErrorCode.ML_SERVER_ERROR, f"the models could not be loaded: {error}"
        )

    def _run(
        self, job: RunJob, progress: ProgressFn, should_cancel: StopFn
    ) -> AnalysisResult | _Death:
        assert self._conn is not None
        settings = self._settings
        self._stage = Stage.DECODE
        self._conn.send(job)
        factor, overhead = settings.ml_task_realtime_factor, settings.ml_analysis_overhead_s
        deadline = time.monotonic() + settings.ml_max_media_duration_s * factor + overhead
        cancelled_at: float | None = None
        while True:
            message = self._receive()
            if message is not None:
                if isinstance(message, Duration):
                    deadline = time.monotonic() + message.seconds * factor + overhead
                elif (result := self._on_message(message, progress)) is not None:
                    return result
                continue
            death = self._check_health(deadline)
            if death is not None:
                return death
            cancelled_at = self._check_cancel(job.job_id, should_cancel, cancelled_at)

    def _on_message(self, message: FromChild, progress: ProgressFn) -> AnalysisResult | None:
        """Act on one message of the child's; the result once it comes (errors are raised)."""
        match message:
            case Progress(stage, percent):
                self._stage = stage
                progress(stage, percent)
            case Result(json):
                return AnalysisResult.model_validate_json(json)
            case Failed(stage, code, text):
                raise StageError(stage, code, text)
            case JobCancelled(stage):
                raise Cancelled(stage)
        return None

    def _check_health(self, deadline: float) -> _Death | None:
        """The child's death, if it died, passed its memory cap (killed) or its time bound."""
        if not self._alive():
            return _Death(
                ErrorCode.MEDIA_CRASHED,
                f"the analysis process died ({self._exit_reason()})",
                retry=True,
            )
        cap_mb = self._settings.ml_worker_max_rss_mb
        rss = _rss_bytes(self.pid)
        if cap_mb and rss > cap_mb * 1024 * 1024:
            self._kill()
            return _Death(
                ErrorCode.MEMORY_LIMIT,
                f"the analysis used {rss // 2**20} MB, over the "
                f"{cap_mb} MB cap (ML_WORKER_MAX_RSS_MB)",
                retry=False,
            )
        if time.monotonic() > deadline:
            self._kill()
            return _Death(
                ErrorCode.ANALYSIS_TIMEOUT,
                "the analysis ran past its time bound (media duration × "
                "ML_TASK_REALTIME_FACTOR + ML_ANALYSIS_OVERHEAD_S)",
                retry=False,
            )
        return None

    def _check_cancel(
        self, job_id: str, should_cancel: StopFn, cancelled_at: float | None
    ) -> float | None:
        """Pass a cancel on to the child; past CANCEL_GRACE_S without an answer, kill it (and
        raise `Cancelled`). Returns when the cancel was sent, None before."""
        now = time.monotonic()
        if cancelled_at is None and should_cancel():
            assert self._conn is not None
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(CancelJob())
            return now
        if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_S:
            logger.warning("job %s: the analysis ignored a cancel; killing it", job_id)
            self._kill()
            self._discard()
            self.start()
            raise Cancelled(self._stage)
        return cancelled_at

    def _receive(self) -> FromChild | None:
        """The next message within POLL_S, or None (nothing yet, or the child is gone)."""
        conn = self._conn
        if conn is None:
            time.sleep(POLL_S)
            return None
        try:
            if not conn.poll(POLL_S):
                return None
            message: FromChild = conn.recv()
        except (EOFError, OSError):
            # The child closed its end (it died): wait for its exit status to be readable.
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=POLL_S)
            return None
        return message

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _exit_reason(self) -> str:
        code = self._proc.poll() if self._proc is not None else None
        if code is None:
            return "no exit status"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            logger.info("stopping analysis child pid=%d", self._proc.pid)
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)

    def _discard(self) -> None:
        self._kill()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn, self._ready = None, None, False


def _rss_bytes(pid: int | None) -> int:
    """Resident memory of `pid` from /proc (0 where /proc is not available)."""
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


# --------------------------------------------------------------------------- child side


def _prepare_child() -> None:
    """Die with the parent, be the OOM killer's first choice, ignore the terminal's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")
    if os.uname().sysname == "Linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


SendFn = Callable[[FromChild], None]


def child_main(conn: Connection) -> None:
    """The child: load the models once, then run jobs sent over `conn` until told to stop."""
    from ml_server.models import get_models

    _prepare_child()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    configure: Configure = conn.recv()
    settings = MLSettings.model_validate(configure.settings)
    send_lock = threading.Lock()
    cancel = threading.Event()
    jobs: queue.Queue[RunJob | None] = queue.Queue()

    def send(message: FromChild) -> None:
        with send_lock:
            conn.send(message)

    # A reader thread, so a cancel arrives while the main thread is deep in a stage.
    threading.Thread(
        target=_read_parent, args=(conn, jobs, cancel), name="parent-reader", daemon=True
    ).start()
    try:
        models = get_models(settings)
    except Exception as exc:
        logger.exception("analysis child: loading the models failed")
        send(Ready(False, f"{type(exc).__name__}: {exc}"[:500]))
        return
    send(Ready(True))
    while (job := jobs.get()) is not None:
        cancel.clear()
        _analyse_one(job, models, send, cancel)
    logger.info("analysis child: told to stop")


def _read_parent(
    conn: Connection, jobs: queue.Queue[RunJob | None], cancel: threading.Event
) -> None:
    """Sort the parent's messages: a cancel now, jobs in order, anything else ends the child."""
    while True:
        try:
            message: ToChild = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the worker is gone: nobody is left to take a result
        match message:
            case CancelJob():
                cancel.set()
            case RunJob():
                jobs.put(message)
            case _:
                jobs.put(None)
                return


def _analyse_one(job: RunJob, models: Models, send: SendFn, cancel: threading.Event) -> None:
    """Run one job's pipeline and send its outcome (result, error or cancelled) to the parent."""
    from ml_server.pipeline.run import run_pipeline

    job_id, path = job.job_id, Path(job.media)
    logger.info("analysis child: job %s", job_id)
    duration = _declared_duration(path)
    if duration is not None:
        send(Duration(duration))
    try:
        result = run_pipeline(
            path,
            options=job.options,
            models=models.choose(job.asr_model),
            progress=lambda stage, pct: send(Progress(stage, pct)),
            should_cancel=cancel.is_set,
            job_id=job_id,
        )
    except Cancelled as exc:
        send(JobCancelled(exc.stage))
    except StageError as exc:
        send(Failed(exc.stage, exc.code, exc.message))
    except Exception as exc:
        logger.exception("job %s: analysis raised", job_id)
        send(Failed(Stage.DECODE, ErrorCode.PROCESSING_ERROR, f"{exc}"[:500]))
    else:
        send(Result(result.model_dump_json()))


def _declared_duration(path: Path) -> float | None:
    """The container's own duration, to size the hang deadline before decoding starts."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return container.duration / 1e6 if container.duration else None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None


if __name__ == "__main__":
    child_main(Connection(int(sys.argv[1])))
