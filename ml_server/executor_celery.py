"""The Celery executor (ML_BROKER_URL set): `POST /process` enqueues the job and returns.

The API process only publishes messages and reads the shared Redis job store; it never loads the
ML stack. Workers (`ecg worker`, any number, any machine) run the jobs.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from ecg_protocol import ProcessRequest
from ml_server.celery_app import TASK_NAME, make_celery, task_limits
from ml_server.config import MLSettings
from ml_server.executor import ExecutorStats
from ml_server.store_redis import RedisJobStore

logger = logging.getLogger(__name__)

# Publishing retries briefly: a broker blip should not fail the request, a dead broker should.
_PUBLISH_RETRY: dict[str, Any] = {
    "max_retries": 3,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class CeleryJobExecutor:
    """Publishes each accepted job to the Celery queue; the store is the shared Redis one."""

    def __init__(
        self, settings: MLSettings, store: RedisJobStore, *, app: Celery | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._app = app or make_celery(settings)
        self._limits = task_limits(settings)

    def submit(self, request: ProcessRequest) -> None:
        """Enqueue the job (task id = job id); on a broker failure forget it and raise."""
        try:
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
        except Exception:
            # The job was recorded before submit: drop it so the backend's retry can resubmit.
            logger.exception("job %s could not be queued", request.job_id)
            self._store.discard_if_queued(request.job_id)
            raise
        logger.info("job %s queued on %s", request.job_id, self._settings.ml_celery_queue)

    def stats(self) -> ExecutorStats:
        """Live workers (their heartbeats in Redis), queue depth (Redis broker only), running."""
        try:
            workers = self._store.live_workers()
            running = self._store.running_jobs()
            depth = self._queue_depth()
        except Exception:
            logger.warning("Celery stats unavailable", exc_info=True)
            return ExecutorStats(workers=0, queue_depth=0, running=0, models_loaded=False)
        return ExecutorStats(
            workers=workers, queue_depth=depth, running=running, models_loaded=workers > 0
        )

    def _queue_depth(self) -> int:
        broker = self._settings.ml_broker_url or ""
        if not broker.startswith(("redis://", "rediss://")):
            return 0
        with self._app.connection_for_write() as conn:
            client = conn.default_channel.client
            return int(client.llen(self._settings.ml_celery_queue))

    def shutdown(self, *, grace_s: float = 10.0) -> None:
        """Nothing runs here; close the broker connections."""
        self._app.close()
