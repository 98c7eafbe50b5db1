"""The ML server app (:8080): `create_app()` for tests and embedding, `serve()` for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ecg_serving.server import run_server
from ml_server import model_hub
from ml_server.api import router
from ml_server.config import MLSettings
from ml_server.errors import install_error_handlers
from ml_server.executor import JobExecutor
from ml_server.executor_factory import make_executor, make_store
from ml_server.languages import held_models
from ml_server.runner import remove_dead_temp_dirs
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


async def _rescue_loop(rescue: Callable[[], list[str]], interval_s: float) -> None:
    """Celery mode: re-publish jobs whose whole worker died (`rescue_orphans`)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(rescue)
        except Exception as exc:  # Redis away: one line, the next tick tries again
            logger.warning("orphan rescue failed: %s: %s", type(exc).__name__, exc)


def create_app(
    settings: MLSettings | None = None,
    *,
    store: JobStore | None = None,
    executor: JobExecutor | None = None,
) -> FastAPI:
    """Build the app; the store and executor are built at startup unless given."""
    settings = settings or MLSettings()
    # A named model missing from the cache stops the start here, with what to do about it,
    # rather than failing every job later (ML_ALLOW_DOWNLOAD=true pulls it instead).
    held = list(held_models(settings).values())
    model_hub.require_cached(held, allow_download=settings.ml_allow_download)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `is None`, not `or`: an empty store is falsy (it has a length).
        # A crash or kill -9 of an earlier run left its jobs' downloads behind.
        await asyncio.to_thread(remove_dead_temp_dirs)
        job_store = store if store is not None else make_store(settings)  # Redis in Celery mode
        # Building the executor starts the workers, which warm the models in their own thread,
        # so /health answers at once and reports models_loaded when they are ready.
        job_executor = executor if executor is not None else make_executor(settings, job_store)
        app.state.store = job_store
        app.state.executor = job_executor
        interval = min(PURGE_INTERVAL_S, max(1.0, settings.ml_result_retention_s / 4))
        purger = asyncio.create_task(_purge_loop(job_store, interval))
        loops = [purger]
        period = job_executor.rescue_interval_s
        if period is not None:
            loops.append(asyncio.create_task(_rescue_loop(job_executor.rescue_orphans, period)))
        logger.info("ML server ready (workers=%d)", job_executor.stats().workers)
        try:
            yield
        finally:
            for loop in loops:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            await asyncio.to_thread(job_executor.shutdown)

    app = FastAPI(title="ECG ML Server", lifespan=lifespan)
    app.state.settings = settings
    # Read once here, never from disk per request (it may be the data dir's generated secret).
    app.state.signing_secret = settings.signing_secret()
    app.include_router(router)
    install_error_handlers(app, redis_store=bool(settings.ml_broker_url))
    return app


def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the ML server with uvicorn (`ecg ml-server`)."""
    try:
        app = create_app()
    except model_hub.ModelUnavailable as exc:
        raise SystemExit(f"ecg ml-server: {exc}") from exc
    # log_config=None keeps the logging the `ecg` command configured.
    run_server(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=15)
