"""Health: `GET /api/upload-video/ml-server/health` (is the ML server up?), and the backend's own
`GET /health` and `GET /metrics` for probes and Prometheus."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from app.api.deps import ContextDep
from app.api.errors import error_responses
from app.services import metrics

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))
ops_router = APIRouter(tags=["ops"])


class MLHealth(BaseModel):
    """The guide's ML health answer (docs/guide.md); 503 carries `error` instead of `response`."""

    model_config = ConfigDict(extra="allow")

    status: str
    ml_server_url: str | None
    response_time_ms: float | None = None
    http_status: int | None = None
    response: str | None = None
    error: str | None = None
    languages: list[str] | None = None  # the ML server's, when it says them
    queue_depth: int | None = None  # likewise


@router.get(
    "/ml-server/health",
    responses={
        200: {"model": MLHealth},
        503: {"model": MLHealth, "description": "the ML server is down, slow or unset"},
    },
)
async def check_ml_server_health(ctx: ContextDep) -> JSONResponse:
    """Ask the ML server's /health (10 s timeout); 503 with the error when it is not healthy.

    Any 200 is healthy, as in the guide (whose ML server answers "ML Server is running"); a 200
    that is our `ecg_protocol.MLServerHealth` also gives its languages and queue depth.
    """
    ml = ctx.dispatcher.ml_client
    if ml is None:
        return JSONResponse(
            status_code=503,
            content={
                "status": "unhealthy",
                "ml_server_url": None,
                "error": "MODEL_SERVER_URL is not configured",
            },
        )
    started = time.perf_counter()
    content: dict[str, Any] = {"ml_server_url": ctx.settings.model_server_url}
    try:
        answer = await ml.health(timeout_s=ctx.settings.ml_health_timeout)
    except Exception as exc:  # any transport failure means "unhealthy", with its reason
        content.update(
            status="unhealthy",
            response_time_ms=_ms_since(started),
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
        return JSONResponse(status_code=503, content=content)
    content.update(
        status="healthy" if answer.healthy else "unhealthy",
        response_time_ms=_ms_since(started),
        http_status=answer.http_status,
        response=answer.detail,
    )
    if not answer.healthy:
        content["error"] = f"ML server answered HTTP {answer.http_status}"
        return JSONResponse(status_code=503, content=content)
    if answer.health is not None:
        # What the web page's and the CLI's language choice offer.
        content["languages"] = answer.health.languages
        content["queue_depth"] = answer.health.queue_depth
    return JSONResponse(status_code=200, content=content)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@ops_router.get("/health")
async def health(request: Request, ctx: ContextDep) -> JSONResponse:
    """The backend itself: up, and its database reachable."""
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # report, never crash the probe
        logger.warning("health: database unreachable: %s", exc)
        return JSONResponse(
            status_code=503,
            content={"status": "unhealthy", "database": "unreachable", "error": str(exc)},
        )
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "storage": ctx.storage.kind,
            "version": request.app.version,
        }
    )


@ops_router.get("/metrics")
async def prometheus_metrics() -> Response:
    """Prometheus exposition (the guide's four metric points)."""
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)
