"""Job state on Redis, shared by the ML server and every Celery worker (Celery mode).

One key per job (`{prefix}job:{job_id}`) holding the `JobRecord` as JSON, expiring after the
retention period (refreshed on every write). Writes are atomic across processes and machines:
- `create_if_absent` is `SET NX`: the same job id twice does the work once;
- `update` and `request_cancel` are optimistic transactions (WATCH/MULTI) applying the shared
  forward-only rule (`store.apply_update`): progress never goes down and a final status is never
  left, so a redelivered or duplicated task can never overwrite or re-open a finished job;
- the cancel flag lives in the record, so `DELETE /jobs/{id}` on the API process is seen by the
  worker running the job on another machine.

Beyond the JobStore protocol the Celery task uses `incr_attempts` (deliveries per job, to bound
the redelivery of a job whose worker keeps dying) and a per-job lease
(`acquire_lease`/`renew_lease`/`release_lease`) so two deliveries of one job never run at once.
The running set (job → lease expiry) and the saved task payload let the API process re-publish a
job whose whole worker died (`orphan_candidates`/`claim_orphan`/`payload`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from ecg_protocol import JobRecord, MLJobStatus, ProcessRequest
from ml_server.config import MLSettings
from ml_server.store import apply_update

logger = logging.getLogger(__name__)

# Compare-and-set on the lease owner, so a worker never renews or drops another's lease.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Claim an orphan for rescue: its running-set score (lease expiry) is older than the cutoff and
# its lease key is gone. Moving the score forward is the claim, so of several API replicas only
# one re-publishes the job per expiry.
_CLAIM_ORPHAN = """
local score = redis.call('zscore', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
if redis.call('exists', KEYS[2]) == 1 then return 0 end
redis.call('zadd', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
_INCR = """
local n = redis.call('incr', KEYS[1])
redis.call('expire', KEYS[1], tonumber(ARGV[1]))
return n
"""


def redis_url_for(settings: MLSettings) -> str:
    """ML_RESULT_BACKEND_URL, else the broker URL when the broker is Redis."""
    if settings.ml_result_backend_url:
        return settings.ml_result_backend_url
    broker = settings.ml_broker_url or ""
    if broker.startswith(("redis://", "rediss://", "unix://")):
        return broker
    raise ValueError(
        "Celery mode needs a Redis job store: set ML_RESULT_BACKEND_URL "
        "(the broker is not Redis, so it cannot double as the store)"
    )


class RedisJobStore:
    """JobStore on Redis: atomic create, forward-only updates, cancel seen by every worker."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "ecg:ml:",
        retention_s: float = 24 * 3600,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = max(1, int(retention_s))
        self._clock = clock or (lambda: datetime.now(UTC))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._incr = client.register_script(_INCR)
        self._claim_orphan = client.register_script(_CLAIM_ORPHAN)

    @classmethod
    def from_settings(cls, settings: MLSettings) -> RedisJobStore:
        """A store on ML_RESULT_BACKEND_URL (or the Redis broker) with the retention and prefix."""
        client = redis.Redis.from_url(
            redis_url_for(settings),
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=10,
            health_check_interval=30,
            retry_on_timeout=True,
        )
        return cls(
            client, prefix=settings.ml_redis_prefix, retention_s=settings.ml_result_retention_s
        )

    @property
    def client(self) -> redis.Redis:
        return self._r

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    def _lease_key(self, job_id: str) -> str:
        return f"{self._prefix}lease:{job_id}"

    def _attempts_key(self, job_id: str) -> str:
        return f"{self._prefix}attempts:{job_id}"

    def _payload_key(self, job_id: str) -> str:
        return f"{self._prefix}payload:{job_id}"

    # ------------------------------------------------------------------ JobStore protocol

    def create_if_absent(self, request: ProcessRequest) -> bool:
        """Record a queued job (SET NX); False, and nothing written, when the id is known."""
        now = self._clock()
        record = JobRecord(job_id=request.job_id, created_at=now, updated_at=now)
        return bool(
            self._r.set(self._key(request.job_id), record.model_dump_json(), nx=True, ex=self._ttl)
        )

    def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None when unknown or expired."""
        raw = self._r.get(self._key(job_id))
        return JobRecord.model_validate_json(raw) if raw is not None else None

    def _transform(
        self, job_id: str, change: Callable[[JobRecord], JobRecord | None]
    ) -> JobRecord | None:
        """Read-modify-write one record atomically; `change` returns None to write nothing."""
        key = self._key(job_id)
        with self._r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None
                    current = JobRecord.model_validate_json(raw)
                    updated = change(current)
                    if updated is None:
                        pipe.unwatch()
                        return current
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json(), ex=self._ttl)
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue  # another process wrote the job between our read and write

    def update(self, job_id: str, **fields: object) -> JobRecord | None:
        """Apply fields by the forward-only rule; None when the job is unknown."""
        now = self._clock()
        return self._transform(job_id, lambda rec: apply_update(rec, dict(fields), now))

    def request_cancel(self, job_id: str) -> bool:
        """Queued → cancelled at once; running → flagged for its worker. False if unknown/final."""
        accepted = False

        def change(rec: JobRecord) -> JobRecord | None:
            nonlocal accepted
            accepted = False
            if rec.status.is_final:
                return None
            accepted = True
            changes: dict[str, object] = {"cancel_requested": True}
            if rec.status is MLJobStatus.QUEUED:
                changes.update(
                    status=MLJobStatus.CANCELLED,
                    error_code="CANCELLED",
                    error_message="cancelled before it started",
                )
            return apply_update(rec, changes, self._clock())

        self._transform(job_id, change)
        return accepted

    def is_cancelled(self, job_id: str) -> bool:
        record = self.get(job_id)
        return record is not None and record.cancel_requested

    def purge_expired(self) -> int:
        """Nothing to do: every write sets EXPIRE, so Redis drops records after retention."""
        return 0

    # ------------------------------------------------------------------ Celery extensions

    def is_final(self, job_id: str) -> bool:
        record = self.get(job_id)
        return record is not None and record.status.is_final

    def incr_attempts(self, job_id: str) -> int:
        """Count one more delivery of the job to a worker; returns the new count."""
        return int(self._incr(keys=[self._attempts_key(job_id)], args=[self._ttl]))

    def attempts(self, job_id: str) -> int:
        raw = self._r.get(self._attempts_key(job_id))
        return int(raw) if raw is not None else 0

    def acquire_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        """Take the job's run lease (SET NX PX); False while another live worker holds it."""
        taken = bool(self._r.set(self._lease_key(job_id), owner, nx=True, px=int(lease_s * 1000)))
        if taken:
            self._r.zadd(self._running_key, {job_id: time.time() + lease_s})
        return taken

    def renew_lease(self, job_id: str, owner: str, lease_s: float) -> bool:
        renewed = bool(
            self._renew(keys=[self._lease_key(job_id)], args=[owner, int(lease_s * 1000)])
        )
        if renewed:
            self._r.zadd(self._running_key, {job_id: time.time() + lease_s})
        return renewed

    def release_lease(self, job_id: str, owner: str) -> None:
        if self._release(keys=[self._lease_key(job_id)], args=[owner]):
            pipe = self._r.pipeline()
            pipe.zrem(self._running_key, job_id)
            pipe.delete(self._payload_key(job_id))
            pipe.execute()

    # ------------------------------------------------------------------ orphan rescue

    def save_payload(self, request: ProcessRequest) -> None:
        """Keep the task payload of a job being delivered, so the API can re-publish it."""
        self._r.set(self._payload_key(request.job_id), request.model_dump_json(), ex=self._ttl)

    def payload(self, job_id: str) -> ProcessRequest | None:
        raw = self._r.get(self._payload_key(job_id))
        return ProcessRequest.model_validate_json(raw) if raw is not None else None

    def orphan_candidates(self, cutoff: float, limit: int = 100) -> list[str]:
        """Running-set members whose lease expired before `cutoff` (epoch seconds)."""
        return [
            str(m)
            for m in self._r.zrangebyscore(self._running_key, "-inf", cutoff, start=0, num=limit)
        ]

    def claim_orphan(self, job_id: str, cutoff: float, next_check: float) -> bool:
        """Atomically claim one rescue of `job_id`: True only if its lease expired before
        `cutoff` and is not held now; its score moves to `next_check`, so the next claim can
        only come after that (one rescue per expiry, whatever the number of rescuers)."""
        return bool(
            self._claim_orphan(
                keys=[self._running_key, self._lease_key(job_id)],
                args=[job_id, cutoff, next_check],
            )
        )

    def forget_running(self, job_id: str) -> None:
        """Drop a job from the running set (final or expired: nothing to rescue)."""
        self._r.zrem(self._running_key, job_id)

    def lease_owner(self, job_id: str) -> str | None:
        value = self._r.get(self._lease_key(job_id))
        return str(value) if value is not None else None

    def ttl(self, job_id: str) -> int:
        """Seconds until the job's record expires (-2: unknown)."""
        return int(self._r.ttl(self._key(job_id)))

    def discard_if_queued(self, job_id: str) -> None:
        """Forget a job that never reached the queue, so the backend's retry can submit it."""
        key = self._key(job_id)
        with self._r.pipeline() as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.get(key)
                if (
                    raw is None
                    or JobRecord.model_validate_json(raw).status is not MLJobStatus.QUEUED
                ):
                    pipe.unwatch()
                    return
                pipe.multi()
                pipe.delete(key)
                pipe.execute()
            except redis.WatchError:
                logger.info("job %s changed while being discarded; kept", job_id)

    # ------------------------------------------------------------------ worker registry

    # Sorted sets scored by expiry time, so counting never scans the keyspace (which holds every
    # retained job). Scores use each machine's clock; skew well under the TTLs is harmless.

    @property
    def _workers_key(self) -> str:
        return f"{self._prefix}workers"

    @property
    def _running_key(self) -> str:
        return f"{self._prefix}running"

    def _live(self, key: str) -> int:
        now = time.time()
        pipe = self._r.pipeline()
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        return int(pipe.execute()[1])

    def worker_alive(self, name: str, ttl_s: float) -> None:
        """A worker process with models loaded says it is alive (refreshed by a heartbeat)."""
        self._r.zadd(self._workers_key, {name: time.time() + ttl_s})

    def worker_gone(self, name: str) -> None:
        self._r.zrem(self._workers_key, name)

    def live_workers(self) -> int:
        """Worker processes whose heartbeat has not expired."""
        return self._live(self._workers_key)

    def running_jobs(self) -> int:
        """Jobs whose run lease is held and not expired.

        Expired entries are kept (not trimmed like workers): they are the orphans the API's
        rescue looks for, and it removes them."""
        return int(self._r.zcount(self._running_key, time.time(), "+inf"))
