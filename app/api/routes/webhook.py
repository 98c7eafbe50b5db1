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
    ingest_callback,
    looks_like_misuse,
    misuse_error,
    read_verified,
    seen_before,
    start_verification,
)

router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))


@router.post("/result", responses=error_responses(400, 404, 413))
async def receive_ml_results(
    request: Request, ctx: ContextDep, jobs: JobsDep, settings: SettingsDep
) -> dict[str, Any]:
    """The ML server's signed callback: progress, then the result or the failure."""
    user_agent = request.headers.get("user-agent")
    try:
        # Before the body: a request that cannot be validly signed must not cost its size.
        verifier = start_verification(request.headers, settings)
    except InvalidSignature as exc:
        if looks_like_misuse(await _peek_small_body(request), user_agent):
            raise misuse_error() from exc
        raise
    if await seen_before(request.headers, jobs):
        return {"status": "duplicate"}
    # Bounded by the body-limit middleware (WEBHOOK_MAX_BYTES), on the header or while streaming.
    msg_id, body = await read_verified(request.stream(), verifier, user_agent=user_agent)
    return await ingest_callback(
        body=body,
        msg_id=msg_id,
        user_agent=user_agent,
        jobs=jobs,
        cache=ctx.status.cache,
        on_final=ctx.client_events.wake,
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
