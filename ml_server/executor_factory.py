"""The store and executor the settings ask for: in this process (default), or Celery.

Kept apart from the executors themselves: the Celery executor imports the executor protocol's
types, so a factory inside `executor.py` that imports the Celery executor was an import cycle.
"""

from __future__ import annotations

from ml_server.config import MLSettings
from ml_server.executor import JobExecutor, ThreadPoolJobExecutor
from ml_server.store import JobStore, MemoryJobStore


def make_store(settings: MLSettings) -> JobStore:
    """The job store the settings ask for: shared Redis in Celery mode, else in memory."""
    if settings.ml_broker_url:
        from ml_server.store_redis import RedisJobStore

        return RedisJobStore.from_settings(settings)
    return MemoryJobStore(settings.ml_result_retention_s)


def make_executor(settings: MLSettings, store: JobStore) -> JobExecutor:
    """The executor the settings ask for (thread pool unless a broker is configured)."""
    if settings.ml_broker_url:
        # Celery mode (docs/scale-out.md): enqueue only; workers run jobs on any machine.
        # Imported here: the thread-pool mode needs neither Celery nor Redis installed.
        from ml_server.executor_celery import CeleryJobExecutor
        from ml_server.store_redis import RedisJobStore

        if not isinstance(store, RedisJobStore):
            raise ValueError("Celery mode needs the shared Redis job store (see make_store)")
        return CeleryJobExecutor(settings, store)
    return ThreadPoolJobExecutor(settings, store)
