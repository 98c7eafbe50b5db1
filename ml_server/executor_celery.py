"""The Celery executor (ML_BROKER_URL set): `POST /process` enqueues the job and returns.

The API process only publishes messages and reads the shared Redis job store; it never loads the
ML stack. Workers (`ecg worker`, any number, any machine) run the jobs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Celery

from ecg_protocol import ProcessRequest
from ml_server.celery_worker import TASK_NAME, make_celery, task_limits
from ml_server.config import MLSettings
from ml_server.executor import ExecutorStats, QueueUnavailable
from ml_server.store_redis import RedisJobStore

logger = logging.getLogger(__name__)

# The publish runs inside `POST /process`, so its wait is bounded: one quick reconnect covers a
# broker blip (a dropped pooled connection), a dead broker fails the request at once with 503.
# Worst case ≈ (1 + max_retries) × PUBLISH_TIMEOUT_S + interval_max (a silent, blackholed broker);
# a refused connection fails in milliseconds.
PUBLISH_TIMEOUT_S = 2.0
_PUBLISH_RETRY: dict[str, Any] = {
    "max_retries": 1,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# What the 503 tells the backend to wait before dispatching again.
RETRY_AFTER_S = 5
# The queue-length read behind /health and /metrics.
STATS_TIMEOUT_S = 0.5


def make_publisher(settings: MLSettings) -> Celery:
    """The API process's Celery app: the workers' configuration, with short broker timeouts.

    The workers keep the longer ones (a worker may wait for its broker; a request may not).
    """
    app = make_celery(settings)
    app.conf.broker_connection_timeout = PUBLISH_TIMEOUT_S  # AMQP connect + handshake
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        # Redis: connect, and each command (a publish is one LPUSH).
        "socket_connect_timeout": PUBLISH_TIMEOUT_S,
        "socket_timeout": PUBLISH_TIMEOUT_S,
    }
    return app


class CeleryJobExecutor:
    """Publishes each accepted job to the Celery queue; the store is the shared Redis one."""

    def __init__(
        self, settings: MLSettings, store: RedisJobStore, *, app: Celery | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._app = app or make_publisher(settings)
        self._limits = task_limits(settings)
        self._broker_redis = _depth_client(settings.ml_broker_url or "")

    def submit(self, request: ProcessRequest) -> None:
        """Enqueue the job (task id = job id); on a broker failure forget it and raise
        `QueueUnavailable`."""
        try:
            self._publish(request)
        except Exception as exc:
            # The job was recorded before submit: drop it so the backend's retry can resubmit.
            logger.error(
                "job_id=%s could not be queued (broker unavailable): %s: %s",
                request.job_id,
                type(exc).__name__,
                exc,
            )
            try:
                self._store.discard_if_queued(request.job_id)
            except Exception:
                # The store is down too: a retry then finds a queued record and queues nothing;
                # the backend's reconciler re-dispatches the job once it stays quiet.
                logger.exception("job_id=%s: could not forget the unqueued job", request.job_id)
            raise QueueUnavailable(
                f"the job queue is unavailable ({type(exc).__name__}: {exc}); retry later",
                retry_after_s=RETRY_AFTER_S,
            ) from exc
        logger.info("job %s queued on %s", request.job_id, self._settings.ml_celery_queue)

    def _publish(self, request: ProcessRequest) -> None:
        self._app.send_task(
            TASK_NAME,
            args=[request.model_dump(mode="json")],
            task_id=request.job_id,
            queue=self._settings.ml_celery_queue,
            soft_time_limit=self._limits.soft_s,
            time_limit=self._limits.hard_s,
            retry=True,
            retry_policy=_PUBLISH_RETRY,
        )

    @property
    def rescue_interval_s(self) -> float:
        """How often `rescue_orphans` runs: half a lease."""
        return max(0.5, self._settings.ml_job_lease_s / 2)

    def rescue_orphans(self, now: float | None = None) -> list[str]:
        """Re-publish jobs whose whole worker died; returns the job ids re-published.

        A job's lease is renewed every third of ML_JOB_LEASE_S while it runs; one that expired
        more than a lease ago (and whose record is not final) has lost its worker. Its message is
        only redelivered after the visibility timeout (hours), so publish it again now. Each
        rescue is claimed atomically in Redis (several API replicas may run this) and pushes the
        job's next check a lease + grace ahead; the delivery guard (lease, final state, attempt
        count) keeps the extra message from running the job twice or past ML_MAX_ATTEMPTS.
        With no live worker nothing could take the job: wait, rather than pile up messages.
        """
        lease = self._settings.ml_job_lease_s
        now = time.time() if now is None else now
        cutoff = now - lease  # grace of one lease: clock skew, a renewal late under load
        candidates = self._store.orphan_candidates(cutoff)
        if not candidates or self._store.live_workers() == 0:
            return []
        rescued: list[str] = []
        for job_id in candidates:
            record = self._store.get(job_id)
            if record is None or record.status.is_final:
                self._store.forget_running(job_id)
                continue
            if not self._store.claim_orphan(job_id, cutoff, now + 2 * lease):
                continue  # still leased, or another replica rescued it
            request = self._store.payload(job_id)
            if request is None:
                logger.warning("job_id=%s: orphaned, but no payload to re-publish", job_id)
                self._store.forget_running(job_id)
                continue
            try:
                self._publish(request)
            except Exception as exc:  # claimed: the next check after 2 leases tries again
                logger.warning(
                    "job_id=%s: orphan rescue could not publish: %s: %s",
                    job_id,
                    type(exc).__name__,
                    exc,
                )
                continue
            logger.warning(
                "job_id=%s: its worker was lost (lease expired); re-published (rescue)", job_id
            )
            rescued.append(job_id)
        return rescued

    def stats(self) -> ExecutorStats:
        """Live workers (their heartbeats in Redis), queue depth (Redis broker only), running."""
        try:
            workers = self._store.live_workers()
            running = self._store.running_jobs()
            depth = self._queue_depth()
        except Exception as exc:
            # One line, no traceback: /health is polled, and a down broker is not a bug.
            logger.warning("Celery stats unavailable: %s: %s", type(exc).__name__, exc)
            return ExecutorStats(workers=0, queue_depth=0, running=0, models_loaded=False)
        return ExecutorStats(
            workers=workers, queue_depth=depth, running=running, models_loaded=workers > 0
        )

    def _queue_depth(self) -> int:
        if self._broker_redis is None:
            return 0
        return int(self._broker_redis.llen(self._settings.ml_celery_queue))

    def shutdown(self, *, grace_s: float = 10.0) -> None:
        """Nothing runs here; close the broker connections."""
        self._app.close()
        if self._broker_redis is not None:
            self._broker_redis.close()


def _depth_client(broker: str) -> redis.Redis | None:
    """A Redis client for the queue length on a Redis broker (None for any other broker).

    Its own short timeouts, not kombu's reconnect loop: /health must answer promptly (showing
    zeros) while the broker is down or hung.
    """
    if not broker.startswith(("redis://", "rediss://")) or ";" in broker:  # ";": failover list
        return None
    return redis.Redis.from_url(
        broker, socket_connect_timeout=STATS_TIMEOUT_S, socket_timeout=STATS_TIMEOUT_S
    )
