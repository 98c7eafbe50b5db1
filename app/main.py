"""ECG Backend: `create_app()` builds the FastAPI app; its lifespan builds everything stateful
(engine, storage, one shared HTTP client, the dispatcher) from the settings it is given."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.body_limit import BodyLimitMiddleware
from app.api.deps import AppContext
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.routes import (
    export,
    health,
    jobs,
    openai,
    openai_models,
    process,
    speakers,
    status,
    storage,
    upload,
    webhook,
)
from app.api.security_headers import SecurityHeadersMiddleware
from app.core.config import Settings, get_settings
from app.db.database import create_engine, create_session_factory, run_migrations
from app.services.client_webhooks import ClientEventSender
from app.services.dispatch import Dispatcher
from app.services.rate_limit import ProcessLimiter
from app.services.status import StatusCache, StatusReader
from app.services.storage import Storage
from app.services.storage_factory import build_storage

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings.resolved_database_url())
    await run_migrations(engine)
    session_factory = create_session_factory(engine)
    store = build_storage(settings)
    # One pooled client for every call to the ML server; per-call timeouts override this.
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.ml_api_timeout, connect=10.0))
    client_events = ClientEventSender(settings=settings, session_factory=session_factory)
    dispatcher = Dispatcher(
        settings=settings,
        session_factory=session_factory,
        http=http,
        storage=store,
        on_final=client_events.wake,
    )
    cache = StatusCache(
        ttl_s=settings.status_cache_ttl_s,
        final_ttl_s=settings.status_cache_final_ttl_s,
        max_bytes=settings.status_cache_max_bytes,
    )
    app.state.ctx = AppContext(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        storage=store,
        http=http,
        dispatcher=dispatcher,
        status=StatusReader(engine, cache),
        process_limiter=ProcessLimiter(
            settings.rate_limit_process, settings.rate_limit_storage_url
        ),
        client_events=client_events,
    )
    await dispatcher.start()
    await client_events.start()
    logger.info(
        "backend ready: storage=%s database=%s ml_server=%s",
        store.kind,
        engine.url.get_backend_name(),
        settings.model_server_url or "(not set)",
    )
    try:
        yield
    finally:
        await client_events.stop()
        await shutdown(dispatcher=dispatcher, http=http, store=store, engine=engine)


# Each shutdown step gets a bound: a stuck close must not keep the process (or a test) alive.
SHUTDOWN_STEP_S = 10.0


async def shutdown(
    *, dispatcher: Dispatcher, http: httpx.AsyncClient, store: Storage, engine: AsyncEngine
) -> None:
    """Stop the dispatcher, then close the HTTP client, the storage and the engine, each bounded."""
    await dispatcher.stop()
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("http client", http.aclose),
        ("storage", store.close),
        ("database engine", engine.dispose),
    ]
    for name, close in steps:
        try:
            async with asyncio.timeout(SHUTDOWN_STEP_S):
                await close()
        except TimeoutError:
            logger.error("shutdown: closing the %s took over %.0fs; skipped", name, SHUTDOWN_STEP_S)
        except (OSError, SQLAlchemyError, httpx.HTTPError) as exc:
            logger.warning("shutdown: closing the %s failed: %s", name, exc)


WEBHOOK_PATH = "/api/upload-video/result"
OPENAI_AUDIO_PREFIX = "/v1/audio/"
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the one-call upload


def body_limits(settings: Settings) -> Callable[[str], int | None]:
    """Each path's body limit, read at request time (tests may change the settings)."""

    def limit_for(path: str) -> int | None:
        if path == WEBHOOK_PATH:
            return settings.webhook_max_bytes
        if path.startswith("/storage/"):
            return None  # uploads stream to disk, bounded by MAX_UPLOAD_BYTES there
        if path.startswith(OPENAI_AUDIO_PREFIX):
            # The one-call API carries the media itself (multipart).
            return settings.max_upload_bytes + MULTIPART_OVERHEAD
        return settings.max_json_body_bytes

    return limit_for


def create_app(settings: Settings | None = None) -> FastAPI:
    """The backend app for `settings` (default: from the environment)."""
    settings = settings or get_settings()
    # /docs and /redoc come from install_docs, with local assets (FastAPI's load a CDN).
    app = FastAPI(
        title="ECG Backend", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_docs(app)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limits(settings))
    # Outermost: every answer carries the headers, the body limit's 413 included.
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)

    # Order kept from before the split (it is the OpenAPI document's order).
    for router in (
        upload.router,
        process.router,
        webhook.router,
        status.router,
        health.router,
        export.router,
        jobs.router,
        storage.router,
        openai.router,
        openai_models.router,
        speakers.router,
        health.ops_router,
    ):
        app.include_router(router)

    # Last: the web page owns every path the API does not.
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the backend with uvicorn (used by `ecg backend`), header-read and idle timeouts on."""
    from ecg_serving.server import run_server

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Client addresses come from the socket; X-Forwarded-For is honoured only through the
    # TRUST_FORWARDED_FOR setting (rate limiting must not trust any local process's header).
    # log_config=None: uvicorn's lines go through the format configured above (one format).
    run_server(create_app(), host=host, port=port, proxy_headers=False, log_config=None)
