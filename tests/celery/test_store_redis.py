"""RedisJobStore against the real Redis: atomic create, forward-only state, shared cancel."""

from __future__ import annotations

import threading
import uuid

import pytest

from ecg_protocol import AnalysisResult, ProcessRequest, Stage
from ecg_protocol.jobs import MLJobStatus
from ml_server.config import MLSettings
from ml_server.store_redis import RedisJobStore, redis_url_for
from tests.support.procs import wait_for


def _request(job_id: str | None = None) -> ProcessRequest:
    return ProcessRequest(
        job_id=job_id or str(uuid.uuid4()),
        video_url="https://media.example.com/v.mp4",
        fastapi_base_url="https://backend.example.com",
    )


def test_create_if_absent_is_atomic_across_racing_processes(
    settings: MLSettings, store: RedisJobStore
) -> None:
    request = _request()
    stores = [RedisJobStore.from_settings(settings) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[bool] = []

    def create(s: RedisJobStore) -> None:
        barrier.wait()
        outcomes.append(s.create_if_absent(request))

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == [False] * 7 + [True]
    record = store.get(request.job_id)
    assert record is not None and record.status is MLJobStatus.QUEUED


def test_update_is_forward_only_and_final_sticks(store: RedisJobStore) -> None:
    request = _request()
    assert store.create_if_absent(request)
    store.update(request.job_id, status=MLJobStatus.PROCESSING, stage=Stage.TRANSCRIBE, progress=40)
    store.update(request.job_id, progress=20)  # progress never goes down
    record = store.get(request.job_id)
    assert record is not None and record.progress == 40 and record.stage is Stage.TRANSCRIBE

    result = AnalysisResult()
    store.update(request.job_id, status=MLJobStatus.COMPLETED, progress=100, result=result)
    # A re-run of the job (a redelivery) can neither re-open nor overwrite it.
    store.update(request.job_id, status=MLJobStatus.PROCESSING, progress=5)
    store.update(request.job_id, status=MLJobStatus.FAILED, error_code="WORKER_LOST")
    store.update(request.job_id, callback_delivered=True)  # the one field allowed after final
    record = store.get(request.job_id)
    assert record is not None
    assert record.status is MLJobStatus.COMPLETED and record.progress == 100
    assert record.result == result and record.error_code is None
    assert record.callback_delivered is True


def test_concurrent_updates_lose_nothing(settings: MLSettings, store: RedisJobStore) -> None:
    request = _request()
    store.create_if_absent(request)
    writers = [RedisJobStore.from_settings(settings) for _ in range(4)]

    def bump(s: RedisJobStore, values: range) -> None:
        for v in values:
            s.update(request.job_id, status=MLJobStatus.PROCESSING, progress=v)

    threads = [
        threading.Thread(target=bump, args=(s, range(i, 99, 4))) for i, s in enumerate(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    record = store.get(request.job_id)
    assert record is not None and record.progress == 98  # the highest value written wins


def test_unknown_job(store: RedisJobStore) -> None:
    assert store.get("nope") is None
    assert store.update("nope", progress=3) is None
    assert store.request_cancel("nope") is False
    assert store.is_cancelled("nope") is False


def test_cancel_is_seen_by_another_process(settings: MLSettings, store: RedisJobStore) -> None:
    queued, running = _request(), _request()
    store.create_if_absent(queued)
    store.create_if_absent(running)
    store.update(running.job_id, status=MLJobStatus.PROCESSING, progress=10)
    api_side = RedisJobStore.from_settings(settings)

    assert api_side.request_cancel(queued.job_id)
    assert api_side.request_cancel(running.job_id)
    # Queued: cancelled at once. Running: flagged for the worker, which stops at its next stage.
    q = store.get(queued.job_id)
    assert q is not None and q.status is MLJobStatus.CANCELLED and q.error_code == "CANCELLED"
    r = store.get(running.job_id)
    assert r is not None and r.status is MLJobStatus.PROCESSING
    assert store.is_cancelled(running.job_id)
    # A final job cannot be cancelled.
    assert not api_side.request_cancel(queued.job_id)


def test_retention_ttl_is_set_and_refreshed(store: RedisJobStore, settings: MLSettings) -> None:
    request = _request()
    store.create_if_absent(request)
    assert 0 < store.ttl(request.job_id) <= settings.ml_result_retention_s
    store.client.expire(f"{settings.ml_redis_prefix}job:{request.job_id}", 5)
    store.update(request.job_id, progress=1)
    assert store.ttl(request.job_id) > 5
    assert store.purge_expired() == 0


def test_attempts_and_lease(store: RedisJobStore) -> None:
    job = _request().job_id
    assert store.attempts(job) == 0
    assert [store.incr_attempts(job) for _ in range(3)] == [1, 2, 3]

    assert store.acquire_lease(job, "worker-a", 5)
    assert not store.acquire_lease(job, "worker-b", 5)
    assert not store.renew_lease(job, "worker-b", 5)
    store.release_lease(job, "worker-b")  # not the owner: nothing happens
    assert store.lease_owner(job) == "worker-a"
    assert store.renew_lease(job, "worker-a", 5)
    store.release_lease(job, "worker-a")
    assert store.acquire_lease(job, "worker-b", 5)


def test_discard_only_while_queued(store: RedisJobStore) -> None:
    queued, started = _request(), _request()
    store.create_if_absent(queued)
    store.create_if_absent(started)
    store.update(started.job_id, status=MLJobStatus.PROCESSING)
    store.discard_if_queued(queued.job_id)
    store.discard_if_queued(started.job_id)
    assert store.get(queued.job_id) is None
    assert store.get(started.job_id) is not None


def test_redis_url_selection() -> None:
    assert redis_url_for(MLSettings(ml_broker_url="redis://h:1/2")) == "redis://h:1/2"
    assert (
        redis_url_for(
            MLSettings(ml_broker_url="amqp://guest@h//", ml_result_backend_url="redis://r/3")
        )
        == "redis://r/3"
    )
    with pytest.raises(ValueError, match="ML_RESULT_BACKEND_URL"):
        redis_url_for(MLSettings(ml_broker_url="amqp://guest@h//"))


def test_worker_and_running_counts_expire(store: RedisJobStore) -> None:
    assert store.live_workers() == 0 and store.running_jobs() == 0
    store.worker_alive("host:1", 30)
    store.worker_alive("host:2", 0.2)
    job = _request().job_id
    assert store.acquire_lease(job, "host:1", 30)
    assert store.live_workers() == 2 and store.running_jobs() == 1
    wait_for(lambda: store.live_workers() == 1, timeout_s=5, what="a silent worker to expire")
    store.release_lease(job, "host:1")
    store.worker_gone("host:1")
    assert store.live_workers() == 0 and store.running_jobs() == 0
