"""`POST /api/upload-video/result`: the ML server's signed callback (progress, then the result
or the failure). Route only: verification and the transition are in app.services.webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import ContextDep, JobsDep, SettingsDep
from app.api.errors import error_responses
from app.services.errors import InvalidSignature
from app.services.webhook import (
    MISUSE_PEEK_BYTES,
    check_callback_headers,
    ingest_callback,
    looks_like_misuse,
    misuse_error,
)

router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))


@router.post("/result", responses=error_responses(400, 404, 413))
async def receive_ml_results(
    request: Request, ctx: ContextDep, jobs: JobsDep, settings: SettingsDep
) -> dict[str, Any]:
    """The ML server's signed callback: progress, then the result or the failure."""
    try:
        # Before the body: an unsigned request must not cost its size in memory.
        check_callback_headers(request.headers, settings)
    except InvalidSignature as exc:
        if looks_like_misuse(await _peek_small_body(request), request.headers.get("user-agent")):
            raise misuse_error() from exc
        raise
    # Bounded by the body-limit middleware (WEBHOOK_MAX_BYTES), on the header or while streaming.
    body = await request.body()
    return await ingest_callback(
        body=body,
        headers=request.headers,
        settings=settings,
        jobs=jobs,
        cache=ctx.status.cache,
    )


async def _peek_small_body(request: Request) -> bytes | None:
    """A body declared at most MISUSE_PEEK_BYTES long (a frontend's status query), else None."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MISUSE_PEEK_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MISUSE_PEEK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
