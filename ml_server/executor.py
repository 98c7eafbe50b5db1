"""Where jobs run: a bounded pool of worker threads in this process (default), or Celery.

The API only needs the `JobExecutor` protocol; `executor_factory.make_executor` picks the
implementation from the settings (Celery when `ML_BROKER_URL` is set).

Worker threads are daemon threads fed from a queue, not a `ThreadPoolExecutor`: at shutdown a
running job stops at its next stage boundary, and a job stuck inside a long stage cannot hold
the process open (the backend reconciles and re-dispatches an abandoned job).

Each worker thread owns one analysis child process (`executor_child.ChildAnalyser`) that holds
the models and runs decode and analysis: this process (the API) never loads them, and a native
crash, a hang or runaway memory on one upload costs that child, never the API.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ecg_protocol import ProcessRequest
from ml_server import metrics
from ml_server.callbacks import CallbackSender
from ml_server.config import MLSettings
from ml_server.store import JobStore

if TYPE_CHECKING:
    from ml_server.executor_child import ChildAnalyser
    from ml_server.runner import ModelsProvider

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExecutorStats:
    """What `/health` and `/metrics` show about the workers."""

    workers: int
    queue_depth: int
    running: int
    models_loaded: bool


class QueueUnavailable(Exception):
    """`submit` could not hand the job to its queue now (the broker is down); nothing is kept.

    The API answers 503 with Retry-After, so the backend's dispatch retry submits it again.
    """

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class JobExecutor(Protocol):
    """Runs accepted jobs somewhere; `submit` never blocks on the work itself."""

    def submit(self, request: ProcessRequest) -> None:
        """Queue the job; raises `QueueUnavailable` (job forgotten) or `RuntimeError` (stopping)."""
        ...

    def stats(self) -> ExecutorStats: ...

    def shutdown(self, *, grace_s: float = 10.0) -> None:
        """Stop taking jobs; ask running ones to stop and wait up to `grace_s`."""
        ...

    @property
    def rescue_interval_s(self) -> float | None:
        """How often the API should call `rescue_orphans`; None when there is nothing to rescue
        (the jobs run in this process, so a lost worker is this process)."""
        ...

    def rescue_orphans(self, now: float | None = None) -> list[str]:
        """Run again the jobs whose worker died; returns their ids."""
        ...


class ThreadPoolJobExecutor:
    """`ML_WORKERS` threads, each with its analysis child; the children load models at start.

    With a `models_provider` (tests, embedding) the analysis runs in this process instead.
    """

    def __init__(
        self,
        settings: MLSettings,
        store: JobStore,
        *,
        sender: CallbackSender | None = None,
        models_provider: ModelsProvider | None = None,
        warm: bool = True,
    ) -> None:
        self._settings = settings
        self._store = store
        self._sender = sender or CallbackSender(settings)
        self._models_provider = models_provider
        self._queue: queue.Queue[ProcessRequest | None] = queue.Queue()
        self._stopping = threading.Event()
        self._models_ready = threading.Event()
        self._warm_lock = threading.Lock()
        self._lock = threading.Lock()
        self._running = 0
        self._workers = settings.ml_workers
        self._warm = warm
        self._analysers: list[ChildAnalyser] = []
        if models_provider is None:
            from ml_server.executor_child import ChildAnalyser

            self._analysers = [
                ChildAnalyser(settings, name=f"ml-analysis-{i}") for i in range(self._workers)
            ]
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"ml-worker-{i}", daemon=True)
            for i in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, request: ProcessRequest) -> None:
        if self._stopping.is_set():
            raise RuntimeError("the executor is shutting down")
        self._queue.put(request)

    def stats(self) -> ExecutorStats:
        with self._lock:
            running = self._running
        return ExecutorStats(
            workers=self._workers,
            queue_depth=self._queue.qsize(),
            running=running,
            models_loaded=self._models_ready.is_set(),
        )

    def shutdown(self, *, grace_s: float = 10.0) -> None:
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=grace_s / max(1, len(self._threads)))
        for analyser in self._analysers:
            analyser.close(grace_s=2.0)
        self._sender.close()

    @property
    def rescue_interval_s(self) -> float | None:
        return None

    def rescue_orphans(self, now: float | None = None) -> list[str]:
        """Nothing to rescue: a worker thread dies only with this process."""
        return []

    def _warm_models(self, index: int) -> None:
        if self._analysers:
            # Each child loads its own models, in parallel with the others.
            if self._analysers[index].warm(should_stop=self._stopping.is_set):
                if not self._models_ready.is_set():
                    logger.info("models loaded (analysis child %d)", index)
                self._models_ready.set()
            else:
                logger.error("analysis child %d could not load the models", index)
            return
        # In-process: the first worker loads; the others wait on the lock and find them cached.
        with self._warm_lock:
            if self._models_ready.is_set():
                return
            try:
                if self._models_provider is not None:
                    self._models_provider()
                else:
                    from ml_server.models import get_models

                    get_models(self._settings)
            except Exception:
                # Each job retries through models_provider and fails with ML_SERVER_ERROR.
                logger.exception("model warm-up failed")
                return
            self._models_ready.set()
            logger.info("models loaded")

    def _loop(self, index: int) -> None:
        # Imported here so an API process that only enqueues (Celery mode) never loads the ML stack.
        from ml_server.runner import execute_job

        analyser = self._analysers[index] if self._analysers else None
        if self._warm:
            self._warm_models(index)
        while True:
            request = self._queue.get()
            if request is None or self._stopping.is_set():
                return
            with self._lock:
                self._running += 1
            try:
                execute_job(
                    request,
                    settings=self._settings,
                    store=self._store,
                    sender=self._sender,
                    models_provider=self._models_provider,
                    analyser=analyser,
                    should_stop=self._stopping.is_set,
                )
            except Exception:
                # execute_job turns job failures into callbacks; this is a bug, keep the worker.
                logger.exception("worker error job_id=%s", request.job_id)
            finally:
                with self._lock:
                    self._running -= 1


def publish_stats(stats: ExecutorStats) -> None:
    """Copy executor stats into the gauges before a scrape."""
    metrics.QUEUE_DEPTH.set(stats.queue_depth)
    metrics.RUNNING.set(stats.running)
    metrics.WORKERS.set(stats.workers)
    metrics.MODELS_LOADED.set(1 if stats.models_loaded else 0)
