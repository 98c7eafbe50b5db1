"""Orphan rescue (API process, Celery mode): a job whose whole worker died is re-published once
per lease expiry, however many API replicas run the rescue at once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from ecg_protocol import ProcessRequest
from ecg_protocol.jobs import MLJobStatus
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


@pytest.fixture
def rescuers(settings: MLSettings) -> Iterator[list[CeleryJobExecutor]]:
    """Two API replicas: each its own store client and broker connection."""
    made = [CeleryJobExecutor(settings, RedisJobStore.from_settings(settings)) for _ in range(2)]
    yield made
    for ex in made:
        ex.shutdown()


def _orphan(store: RedisJobStore) -> str:
    """A job mid-run whose worker died: processing, payload saved, its short lease expired."""
    request = _request()
    store.create_if_absent(request)
    store.update(request.job_id, status=MLJobStatus.PROCESSING, progress=20)
    store.save_payload(request)
    assert store.acquire_lease(request.job_id, "dead-host:1:x", 0.1)
    wait_for(
        lambda: store.lease_owner(request.job_id) is None, timeout_s=5, what="the lease to expire"
    )
    return request.job_id


def _queued_task_ids(client: redis.Redis, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def test_two_rescuers_republish_an_orphan_once(
    settings: MLSettings,
    store: RedisJobStore,
    redis_client: redis.Redis,
    rescuers: list[CeleryJobExecutor],
) -> None:
    store.worker_alive("live-host:2", 30)
    job_id = _orphan(store)
    now = time.time() + 10  # well past the lease + grace, without sleeping through it
    barrier = threading.Barrier(len(rescuers))
    results: list[list[str]] = []

    def rescue(ex: CeleryJobExecutor) -> None:
        barrier.wait()
        results.append(ex.rescue_orphans(now))

    threads = [threading.Thread(target=rescue, args=(ex,)) for ex in rescuers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(len(r) for r in results) == [0, 1]
    assert [job_id] in results
    queue = settings.ml_celery_queue
    assert _queued_task_ids(redis_client, queue) == [job_id]  # same task id as the submit
    # The claim moved the job's next check forward: no re-publish on the next ticks...
    assert rescuers[0].rescue_orphans(now) == [] and rescuers[1].rescue_orphans(now + 1) == []
    # ...but one more per expiry while nobody takes the job.
    later = now + 3 * settings.ml_job_lease_s + 1
    assert rescuers[1].rescue_orphans(later) == [job_id]
    assert rescuers[0].rescue_orphans(later) == []
    assert _queued_task_ids(redis_client, queue) == [job_id, job_id]


def test_live_final_and_workerless_jobs_are_not_rescued(
    settings: MLSettings,
    store: RedisJobStore,
    redis_client: redis.Redis,
    rescuers: list[CeleryJobExecutor],
) -> None:
    rescuer = rescuers[0]
    now = time.time() + 10
    orphan = _orphan(store)
    # No live worker: nothing could take the job, so nothing is published (yet).
    assert rescuer.rescue_orphans(now) == []

    store.worker_alive("live-host:2", 30)
    live = _request()
    store.create_if_absent(live)
    store.save_payload(live)
    assert store.acquire_lease(live.job_id, "live-host:2:y", 60)  # held: its worker is alive
    finished = _orphan(store)
    store.update(finished, status=MLJobStatus.FAILED, error_code="X", error_message="x")

    assert rescuer.rescue_orphans(now) == [orphan]
    assert _queued_task_ids(redis_client, settings.ml_celery_queue) == [orphan]
    # The final job left the running set; the live one stays in it and keeps its lease.
    assert set(store.orphan_candidates(now + 1000)) == {orphan, live.job_id}
    assert store.lease_owner(live.job_id) == "live-host:2:y"
