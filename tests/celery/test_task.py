"""The Celery task's configuration and delivery logic against the real Redis (no pipeline)."""

from __future__ import annotations

import threading
import uuid

import pytest
from celery.exceptions import Reject, TimeLimitExceeded

from ecg_protocol import AnalysisResult, ErrorCode, ProcessRequest
from ecg_protocol.jobs import MLJobStatus
from ml_server.celery_worker import (
    TASK_NAME,
    WorkerContext,
    broker_transport_options,
    install_worker_context,
    make_celery,
    run_delivery,
    task_limits,
)
from ml_server.config import MLSettings
from ml_server.executor_celery import CeleryJobExecutor
from ml_server.store_redis import RedisJobStore
from tests.support.procs import wait_for


def _request() -> ProcessRequest:
    return ProcessRequest(
        job_id=str(uuid.uuid4()),
        video_url="https://media.example.com/v.mp4",
        fastapi_base_url="https://backend.example.com",
    )


class Recorder:
    """Stands in for the runner: records runs and failures, completes the job in the store."""

    def __init__(self, store: RedisJobStore, *, raise_exc: bool = False) -> None:
        self.store = store
        self.runs: list[str] = []
        self.failures: list[tuple[str, ErrorCode]] = []
        self.raise_exc = raise_exc

    def execute(self, request: ProcessRequest) -> None:
        self.runs.append(request.job_id)
        if self.raise_exc:
            raise RuntimeError("boom")
        self.store.update(
            request.job_id, status=MLJobStatus.COMPLETED, progress=100, result=AnalysisResult()
        )

    def fail(self, request: ProcessRequest, code: ErrorCode, message: str) -> None:
        self.failures.append((request.job_id, code))
        self.store.update(request.job_id, status=MLJobStatus.FAILED, error_code=code.value)


def _ctx(settings: MLSettings, store: RedisJobStore, rec: Recorder) -> WorkerContext:
    return WorkerContext(settings=settings, store=store, execute=rec.execute, fail=rec.fail)


def test_app_configuration_is_one_job_at_a_time_late_ack(settings: MLSettings) -> None:
    app = make_celery(settings)
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_default_queue == settings.ml_celery_queue
    assert TASK_NAME in app.tasks
    limits = task_limits(settings)
    assert conf.task_soft_time_limit == limits.soft_s < conf.task_time_limit == limits.hard_s
    assert conf.broker_transport_options["visibility_timeout"] >= limits.hard_s


def test_limits_scale_with_the_longest_accepted_media() -> None:
    short = task_limits(MLSettings(ml_max_media_duration_s=60, ml_download_timeout_s=30))
    long = task_limits(MLSettings(ml_max_media_duration_s=3600, ml_download_timeout_s=30))
    factor = MLSettings().ml_task_realtime_factor  # 3.0: sized for bundled:base (issue 8)
    assert long.hard_s - short.hard_s == pytest.approx((3600 - 60) * factor)
    assert short.visibility_s > short.hard_s
    explicit = MLSettings(ml_visibility_timeout_s=15)
    assert task_limits(explicit).visibility_s == 15
    assert broker_transport_options(explicit)["unacked_restore_interval"] == 1


def test_first_delivery_runs_and_a_redelivery_of_a_finished_job_does_not(
    settings: MLSettings, store: RedisJobStore
) -> None:
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    assert run_delivery(request, _ctx(settings, store, rec), owner="w1") == "ran"
    assert run_delivery(request, _ctx(settings, store, rec), owner="w2") == "already_final"
    assert rec.runs == [request.job_id]
    assert store.lease_owner(request.job_id) is None  # released


def test_attempts_are_bounded_then_worker_lost(settings: MLSettings, store: RedisJobStore) -> None:
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    # Two deliveries whose worker died mid-job (attempt counted, job never finished).
    for _ in range(settings.ml_max_attempts):
        store.incr_attempts(request.job_id)
    assert run_delivery(request, _ctx(settings, store, rec), owner="w3") == "worker_lost"
    assert rec.runs == []
    assert rec.failures == [(request.job_id, ErrorCode.WORKER_LOST)]
    record = store.get(request.job_id)
    assert record is not None and record.status is MLJobStatus.FAILED


def test_a_live_holder_keeps_the_job(settings: MLSettings, store: RedisJobStore) -> None:
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    assert store.acquire_lease(request.job_id, "alive", settings.ml_job_lease_s)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(0.3):
            store.renew_lease(request.job_id, "alive", settings.ml_job_lease_s)

    t = threading.Thread(target=keep)
    t.start()
    try:
        outcome = run_delivery(request, _ctx(settings, store, rec), owner="dup")
    finally:
        stop.set()
        t.join()
    assert outcome == "running_elsewhere" and rec.runs == []


def test_a_dead_holders_lease_is_waited_out(settings: MLSettings, store: RedisJobStore) -> None:
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    store.acquire_lease(request.job_id, "dead", settings.ml_job_lease_s)  # never renewed
    assert run_delivery(request, _ctx(settings, store, rec), owner="next") == "ran"
    assert rec.runs == [request.job_id]


def test_runner_crash_is_one_failed_report(settings: MLSettings, store: RedisJobStore) -> None:
    rec = Recorder(store, raise_exc=True)
    request = _request()
    store.create_if_absent(request)
    assert run_delivery(request, _ctx(settings, store, rec), owner="w") == "failed"
    assert rec.failures == [(request.job_id, ErrorCode.PROCESSING_ERROR)]


def test_cancelled_before_start_is_not_run(settings: MLSettings, store: RedisJobStore) -> None:
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    assert store.request_cancel(request.job_id)
    assert run_delivery(request, _ctx(settings, store, rec), owner="w") == "already_final"
    assert rec.runs == []


def test_executor_enqueues_with_job_id_and_limits(
    settings: MLSettings, store: RedisJobStore
) -> None:
    executor = CeleryJobExecutor(settings, store)
    request = _request()
    store.create_if_absent(request)
    executor.submit(request)
    try:
        assert executor.stats().queue_depth == 1
        raw = store.client.lrange(settings.ml_celery_queue, 0, -1)
        assert request.job_id in raw[0] and TASK_NAME in raw[0]
    finally:
        store.client.delete(settings.ml_celery_queue)
        executor.shutdown()


def test_executor_forgets_a_job_the_broker_refused(settings: MLSettings) -> None:
    dead = settings.model_copy(
        update={
            "ml_broker_url": "redis://127.0.0.1:1/0",
            "ml_result_backend_url": "redis://127.0.0.1:6379/0",
        }
    )
    store = RedisJobStore.from_settings(dead)
    executor = CeleryJobExecutor(dead, store, app=make_celery(dead))
    request = _request()
    store.create_if_absent(request)
    with pytest.raises(Exception):  # noqa: B017 - kombu raises its own connection errors
        executor.submit(request)
    assert store.get(request.job_id) is None  # the backend's retry can submit it again


def test_hard_time_limit_reports_one_timeout_failure(
    settings: MLSettings, store: RedisJobStore
) -> None:
    # Celery calls on_failure in the worker's main process after killing the pool process.
    rec = Recorder(store)
    request = _request()
    store.create_if_absent(request)
    install_worker_context(_ctx(settings, store, rec))
    try:
        task = make_celery(settings).tasks[TASK_NAME]
        task.on_failure(
            TimeLimitExceeded(30), request.job_id, [request.model_dump(mode="json")], {}, None
        )
        wait_for(lambda: bool(rec.failures), timeout_s=10, what="the timeout report")
        assert rec.failures == [(request.job_id, ErrorCode.TIMEOUT_ERROR)]
        # Any other failure is the runner's to report, not the task base's.
        task.on_failure(
            RuntimeError("x"), request.job_id, [request.model_dump(mode="json")], {}, None
        )
        assert len(rec.failures) == 1
    finally:
        install_worker_context(None)


def test_store_outage_requeues_instead_of_acknowledging(settings: MLSettings) -> None:
    # The job store unreachable: the delivery must go back on the queue, not be acked and lost.
    dead = settings.model_copy(update={"ml_result_backend_url": "redis://127.0.0.1:1/0"})
    store = RedisJobStore.from_settings(dead)
    rec = Recorder(store)
    install_worker_context(_ctx(dead, store, rec))
    try:
        task = make_celery(settings).tasks[TASK_NAME]
        with pytest.raises(Reject) as info:
            task.run(_request().model_dump(mode="json"))
        assert info.value.requeue is True
        assert rec.runs == []
    finally:
        install_worker_context(None)
