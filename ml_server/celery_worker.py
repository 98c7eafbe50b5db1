"""ML work on Celery workers (ML_BROKER_URL set): the app, the `process_job` task, `ecg worker`.

This is the whole worker side: the Celery app and its configuration, the task, the delivery
rules, and the glue to the runner (one analysis child per pool process). The API side only
publishes (`executor_celery`), importing the app's configuration from here; the runner and the
analysis child are imported inside functions, so an API process that enqueues never loads the
ML stack.

Delivery guarantees, and why each setting is there:
- `task_acks_late` + `worker_prefetch_multiplier=1`: a worker takes one job at a time per
  process and the message is acknowledged only after the job ran, so a worker that dies mid-job
  leaves the message to be delivered again.
- `task_reject_on_worker_lost`: a pool process killed mid-job (OOM, kill -9) puts the message
  straight back on the queue instead of marking it failed.
- Redis `visibility_timeout`: a message whose whole worker died is redelivered after this long.
  It must exceed the longest legitimate run, or a live job would be handed to a second worker; it
  is therefore derived from the same bound as the time limits (see `task_limits`).
- A whole worker lost (no requeue) would wait out the visibility timeout: the API process
  instead re-publishes a job whose lease expired (`CeleryJobExecutor.rescue_orphans`), and the
  lease and attempt count below keep that from running it twice or forever.
- Attempts are counted per job in the shared store; a job delivered more than ML_MAX_ATTEMPTS
  times (its worker died each time) fails with WORKER_LOST instead of looping forever.
- A finished job is never run again: the store keeps final states final, a redelivered task
  checks it first, and a per-job lease keeps two deliveries from running at once.
- Models are loaded once per worker process, at `worker_process_init`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery, Task, signals
from celery.exceptions import Reject, TimeLimitExceeded

from ecg_protocol import ErrorCode, ProcessRequest
from ml_server.callbacks import CallbackSender
from ml_server.config import MLSettings, get_ml_settings
from ml_server.store_redis import RedisJobStore

if TYPE_CHECKING:
    from ml_server.executor_child import ChildAnalyser

logger = logging.getLogger(__name__)

TASK_NAME = "ecg.process_job"
# Seconds a job may need beyond download and analysis: model warm-up, result upload, callbacks.
_OVERHEAD_S = 120.0
# Hard limit past the soft one: time for the failed callback after SoftTimeLimitExceeded.
_HARD_GRACE_S = 60.0
# Pause before requeueing a delivery that found the job store unreachable.
_STORE_RETRY_PAUSE_S = 2.0


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """Per-task time limits and the broker visibility timeout, all in seconds."""

    soft_s: float
    hard_s: float
    visibility_s: float


def task_limits(settings: MLSettings) -> TaskLimits:
    """Size the limits to the longest media the pipeline accepts.

    The task cannot know a video's duration before it downloads it, but the pipeline refuses
    media longer than ML_MAX_MEDIA_DURATION_S, so `download timeout + max duration × realtime
    factor + overhead` bounds every legitimate run. The visibility timeout sits above the hard
    limit: a message is only redelivered once no live worker can still be running it.
    """
    work = settings.ml_max_media_duration_s * settings.ml_task_realtime_factor
    soft = settings.ml_download_timeout_s + work + _OVERHEAD_S
    hard = soft + _HARD_GRACE_S
    visibility = settings.ml_visibility_timeout_s or hard + _HARD_GRACE_S
    return TaskLimits(soft_s=soft, hard_s=hard, visibility_s=max(visibility, 1.0))


def broker_transport_options(settings: MLSettings) -> dict[str, Any]:
    """Redis transport options; RabbitMQ ignores them (its `consumer_timeout` plays this role)."""
    vis = task_limits(settings).visibility_s
    return {
        "visibility_timeout": int(vis),
        # Sweep for abandoned messages often enough that recovery is ~visibility timeout.
        "unacked_restore_interval": max(1, min(60, int(vis / 10))),
        "unacked_restore_throttle": 1,
        "socket_timeout": 30,
        "socket_connect_timeout": 10,
    }


class JobTask(Task):  # type: ignore[misc]
    """Task base: a hard time limit (the pool killed the job) still ends in a failed callback."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not isinstance(exc, TimeLimitExceeded) or not args:
            return
        # Runs in the worker's main process: report from a thread, never block its event loop.
        threading.Thread(
            target=_report_hard_timeout,
            args=(args[0], f"the job exceeded its hard time limit ({exc})"),
            daemon=True,
            name=f"timeout-{task_id}",
        ).start()


def _report_hard_timeout(payload: dict[str, Any], message: str) -> None:
    request = ProcessRequest.model_validate(payload)
    try:
        fail_job(worker_context(), request, ErrorCode.TIMEOUT_ERROR, message)
    except Exception:  # logged; the backend's reconciler still finds the job quiet
        logger.exception("job %s: could not report the hard time limit", request.job_id)


def make_celery(settings: MLSettings) -> Celery:
    """A Celery app on ML_BROKER_URL with the one-job-at-a-time, late-ack configuration."""
    if not settings.ml_broker_url:
        raise ValueError("ML_BROKER_URL is not set: Celery mode needs a Redis or RabbitMQ URL")
    limits = task_limits(settings)
    app = Celery("ecg_ml", broker=settings.ml_broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_default_queue=settings.ml_celery_queue,
        task_serializer="json",
        accept_content=["json"],
        # Job state lives in the Redis job store, not in a Celery result backend.
        task_ignore_result=True,
        task_soft_time_limit=limits.soft_s,
        task_time_limit=limits.hard_s,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
    )
    app.task(name=TASK_NAME, bind=True, base=JobTask)(_process_job_task)
    return app


@lru_cache(maxsize=1)
def get_celery_app() -> Celery:
    """The process's Celery app, on the environment's settings."""
    return make_celery(get_ml_settings())


# --------------------------------------------------------------------------- worker side


# Where the task meets the runner: one job run, one failed-job report, model warm-up.
ExecuteFn = Callable[[ProcessRequest], None]
FailFn = Callable[[ProcessRequest, ErrorCode, str], None]


def bind_runner(
    settings: MLSettings, store: RedisJobStore, analyser: ChildAnalyser
) -> tuple[ExecuteFn, FailFn]:
    """The two things a worker process does with a job, bound to its settings and store: run it,
    or fail it from outside its run. Both go through the runner, so a job fails one way."""
    from ml_server.runner import execute_job, fail_job

    sender = CallbackSender(settings)

    def execute(request: ProcessRequest) -> None:
        execute_job(request, settings=settings, store=store, analyser=analyser, sender=sender)

    def fail(request: ProcessRequest, code: ErrorCode, message: str) -> None:
        fail_job(request, code, message, store=store, sender=sender)

    return execute, fail


@dataclass(slots=True)
class WorkerContext:
    """What one worker process keeps between jobs: settings, store, the job's run and failure
    report, and its analysis child (None where the runner is stood in for)."""

    settings: MLSettings
    store: RedisJobStore
    execute: ExecuteFn
    fail: FailFn
    analyser: ChildAnalyser | None = None


class _ProcessContext:
    """The one piece of per-process state: Celery's signal handlers and the task reach the
    context through it, and a forked pool process builds its own instead of inheriting one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ctx: WorkerContext | None = None
        self._pid = -1

    def install(self, ctx: WorkerContext | None) -> None:
        with self._lock:
            self._ctx, self._pid = ctx, os.getpid()

    def get(self) -> WorkerContext:
        with self._lock:
            if self._ctx is None or self._pid != os.getpid():
                self._ctx, self._pid = _build_context(get_ml_settings()), os.getpid()
            return self._ctx

    def current(self) -> WorkerContext | None:
        """This process's context if it has built one (never a parent's)."""
        with self._lock:
            return self._ctx if self._pid == os.getpid() else None


_process = _ProcessContext()


def install_worker_context(ctx: WorkerContext | None) -> None:
    """Use `ctx` in this process (embedding and tests); None rebuilds from the environment."""
    _process.install(ctx)


def _build_context(settings: MLSettings) -> WorkerContext:
    """A pool process's context. Each pool process runs its analyses in its own analysis child,
    which holds the models: a native crash on one upload costs that child and fails the job
    MEDIA_CRASHED after one retry, instead of killing the pool process and sending the message
    round the queue again."""
    from ml_server.executor_child import ChildAnalyser

    store = RedisJobStore.from_settings(settings)
    analyser = ChildAnalyser(settings, name=f"ml-analysis-{os.getpid()}")
    execute, fail = bind_runner(settings, store, analyser)
    return WorkerContext(
        settings=settings, store=store, execute=execute, fail=fail, analyser=analyser
    )


def worker_context() -> WorkerContext:
    """This process's context, built on first use in this process (never inherited by fork)."""
    return _process.get()


def warm_models(ctx: WorkerContext) -> None:
    """Start this pool process's analysis child and wait for its models, before the first job."""
    if ctx.analyser is not None and not ctx.analyser.warm():
        raise RuntimeError("the analysis process could not load the models")


def fail_job(ctx: WorkerContext, request: ProcessRequest, code: ErrorCode, message: str) -> None:
    """Mark the job failed with `code` and send the one failed callback (no-op once final)."""
    if ctx.store.is_final(request.job_id):
        return
    ctx.fail(request, code, message)


class _LeaseKeeper:
    """Renews the job's lease while it runs, so a live worker keeps it and a dead one loses it."""

    def __init__(self, store: RedisJobStore, job_id: str, owner: str, lease_s: float) -> None:
        self._store, self._job_id, self._owner, self._lease_s = store, job_id, owner, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"lease-{job_id}")

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                if not self._store.renew_lease(self._job_id, self._owner, self._lease_s):
                    logger.warning("job %s: lease lost by %s", self._job_id, self._owner)
            except Exception:  # a Redis blip: try again next beat; the lease outlives 2 misses
                logger.warning("job %s: lease renewal failed", self._job_id, exc_info=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _wait_for_lease(store: RedisJobStore, job_id: str, owner: str, lease_s: float) -> bool:
    """Take the lease, waiting out a dead holder's lease (at most one lease period + margin)."""
    deadline = time.monotonic() + lease_s * 1.5
    while True:
        if store.acquire_lease(job_id, owner, lease_s):
            return True
        if store.is_final(job_id) or time.monotonic() >= deadline:
            return False
        time.sleep(min(1.0, lease_s / 10))


def run_delivery(request: ProcessRequest, ctx: WorkerContext, *, owner: str) -> str:
    """Handle one delivery of a job; returns what happened (for logs and tests)."""
    store, settings, job_id = ctx.store, ctx.settings, request.job_id
    if store.get(job_id) is None:
        # The record expired (or was never written): recreate it so the job is visible.
        store.create_if_absent(request)
    if store.is_final(job_id):
        logger.info("job %s already final; delivery acknowledged without running", job_id)
        return "already_final"
    # Before the lease: a running-set entry always has a payload the API can re-publish.
    store.save_payload(request)
    if not _wait_for_lease(store, job_id, owner, settings.ml_job_lease_s):
        logger.info(
            "job %s is running on %s; this delivery is dropped", job_id, store.lease_owner(job_id)
        )
        return "running_elsewhere"
    try:
        if store.is_final(job_id):
            return "already_final"
        attempt = store.incr_attempts(job_id)
        if attempt > settings.ml_max_attempts:
            logger.error(
                "job %s: delivered %d times, its worker died each time; failing it",
                job_id,
                attempt - 1,
            )
            fail_job(
                ctx,
                request,
                ErrorCode.WORKER_LOST,
                f"the worker running the job was lost {attempt - 1} times",
            )
            return "worker_lost"
        logger.info("job %s: attempt %d on %s", job_id, attempt, owner)
        with _LeaseKeeper(store, job_id, owner, settings.ml_job_lease_s):
            try:
                ctx.execute(request)
            except Exception as exc:  # the runner reports its own failures; this is a backstop
                logger.exception("job %s: runner raised", job_id)
                fail_job(ctx, request, ErrorCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
                return "failed"
        return "ran"
    finally:
        store.release_lease(job_id, owner)


def _process_job_task(task: Task, payload: dict[str, Any]) -> str:
    """Celery task `ecg.process_job`: run one job via the runner, at most once to completion."""
    request = ProcessRequest.model_validate(payload)
    owner = f"{task.request.hostname or socket.gethostname()}:{os.getpid()}:{task.request.id}"
    try:
        return run_delivery(request, worker_context(), owner=owner)
    except redis.RedisError as exc:
        # Without the job store nothing can be decided safely: put the message back (after a
        # pause, so a store outage is not a hot loop) instead of acknowledging a lost job.
        logger.warning("job %s: job store unavailable (%s); requeued", request.job_id, exc)
        time.sleep(_STORE_RETRY_PAUSE_S)
        raise Reject(str(exc), requeue=True) from exc


_WORKER_TTL_S = 30.0


def _heartbeat(store: RedisJobStore, name: str) -> None:
    while True:
        try:
            store.worker_alive(name, _WORKER_TTL_S)
        except Exception:  # Redis briefly away: the next beat repairs it
            logger.warning("worker heartbeat failed", exc_info=True)
        time.sleep(_WORKER_TTL_S / 3)


def _process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _load_models_once(**_: object) -> None:
    """worker_process_init: start this pool process's analysis child loading the models.

    The wait runs on a thread: Celery kills a pool process that is not up within
    `worker_proc_alive_timeout` (4 s), and loading takes longer on a busy machine. A job that
    arrives first waits for the models inside the runner.
    """
    threading.Thread(target=_warm_then_heartbeat, daemon=True, name="warm-models").start()


def _warm_then_heartbeat() -> None:
    ctx = worker_context()
    started = time.monotonic()
    try:
        warm_models(ctx)
    except Exception:
        # No crash loop of pool processes: each job fails ML_SERVER_ERROR through the runner,
        # and without a heartbeat /health shows no worker with models loaded.
        logger.exception("worker process %d: loading the models failed", os.getpid())
        return
    logger.info(
        "worker process %d: models loaded in %.1f s", os.getpid(), time.monotonic() - started
    )
    # Only now is this process ready: its heartbeat is what /health counts as a worker.
    _heartbeat(ctx.store, _process_name())


def _process_shutdown(**_: object) -> None:
    ctx = _process.current()
    if ctx is None:
        return
    if ctx.analyser is not None:
        ctx.analyser.close(grace_s=2.0)
    try:
        ctx.store.worker_gone(_process_name())
    except Exception:
        logger.debug("could not deregister worker process", exc_info=True)


def run_worker(concurrency: int = 1, hostname: str | None = None) -> int:
    """`ecg worker`: consume ML jobs with `concurrency` pool processes, one job at a time each."""
    from ml_server.runner import remove_dead_temp_dirs

    settings = get_ml_settings()
    app = get_celery_app()
    remove_dead_temp_dirs()  # downloads left by jobs of a worker that was killed
    signals.worker_process_init.connect(_load_models_once, weak=False)
    signals.worker_process_shutdown.connect(_process_shutdown, weak=False)
    name = hostname or f"ecg-worker-{os.getpid()}@{socket.gethostname()}"
    worker = app.Worker(
        hostname=name,
        concurrency=max(1, concurrency),
        pool_cls="prefork",
        queues=[settings.ml_celery_queue],
        loglevel="INFO",
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        optimization="fair",
    )
    worker.start()
    return int(worker.exitcode or 0)
