"""The ML server app (:8080): `create_app()` for tests and embedding, `serve()` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from ml_server.api import router
from ml_server.config import MLSettings
from ml_server.executor import JobExecutor, make_executor, make_store
from ml_server.store import JobStore

logger = logging.getLogger(__name__)

PURGE_INTERVAL_S = 300.0


async def _purge_loop(store: JobStore, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            purged = await asyncio.to_thread(store.purge_expired)
        except Exception:
            logger.exception("purging expired jobs failed")
            continue
        if purged:
            logger.info("purged %d expired jobs", purged)


def create_app(
    settings: MLSettings | None = None,
    *,
    store: JobStore | None = None,
    executor: JobExecutor | None = None,
) -> FastAPI:
    """Build the app; the store and executor are built at startup unless given."""
    settings = settings or MLSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `is None`, not `or`: an empty store is falsy (it has a length).
        job_store = store if store is not None else make_store(settings)  # Redis in Celery mode
        # Building the executor starts the workers, which warm the models in their own thread,
        # so /health answers at once and reports models_loaded when they are ready.
        job_executor = executor if executor is not None else make_executor(settings, job_store)
        app.state.store = job_store
        app.state.executor = job_executor
        interval = min(PURGE_INTERVAL_S, max(1.0, settings.ml_result_retention_s / 4))
        purger = asyncio.create_task(_purge_loop(job_store, interval))
        logger.info("ML server ready (workers=%d)", job_executor.stats().workers)
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            await asyncio.to_thread(job_executor.shutdown)

    app = FastAPI(title="ECG ML Server", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the ML server with uvicorn (`ecg ml-server`)."""
    # log_config=None keeps the logging the `ecg` command configured.
    uvicorn.run(create_app(), host=host, port=port, log_config=None, timeout_graceful_shutdown=15)
