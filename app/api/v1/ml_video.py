"""The guide's ML routes: request-process, the result webhook, status and ML health.
Routes only: the work is in app.services."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from app.api.deps import AppContext, ContextDep, CurrentUser, JobsDep, RateLimitProcess, SettingsDep
from app.api.errors import error_responses
from app.services.auth import authenticate
from app.services.client_webhooks import check_webhook_url
from app.services.errors import (
    Conflict,
    InvalidInput,
    InvalidSignature,
    JobNotFound,
)
from app.services.job_service import parse_job_id
from app.services.processing import job_language, start_processing
from app.services.uploads import check_uploaded_object
from app.services.webhook import (
    MISUSE_PEEK_BYTES,
    check_callback_headers,
    ingest_callback,
    looks_like_misuse,
    misuse_error,
)
from ecg_protocol import ProcessOptions

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))


class ProcessVideoRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    fileKey: str = Field(
        validation_alias=AliasChoices("fileKey", "file_key"), min_length=1, max_length=1024
    )
    # `auto`, one code (`ko`) or a list to detect among (`ko,en`); codes checked in the route.
    language: str = Field(
        default="auto",
        max_length=256,
        pattern=r"^\s*[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})?(\s*,\s*[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})?)*\s*$",
    )
    min_speakers: int | None = Field(default=None, ge=1, le=32)
    max_speakers: int | None = Field(default=None, ge=1, le=32)
    # Decoding hints passed to faster-whisper (initial_prompt, hotwords).
    prompt: str | None = Field(default=None, max_length=2000)
    hotwords: str | None = Field(default=None, max_length=1000)
    # Where to POST job.completed / job.failed (Standard Webhooks, CLIENT_WEBHOOK_SECRET).
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2048)


class ProcessStarted(BaseModel):
    message: str = "Video processing started."
    job_id: str


class MLHealth(BaseModel):
    """The guide's ML health answer; 503 carries `error` instead of `response`."""

    model_config = ConfigDict(extra="allow")

    status: str
    ml_server_url: str | None
    response_time_ms: float | None = None
    http_status: int | None = None
    response: str | None = None
    error: str | None = None


@router.post(
    "/request-process",
    dependencies=[RateLimitProcess],
    responses=error_responses(400, 404, 409, 413, 415, 429),
)
async def request_process(
    body: ProcessVideoRequest,
    user: CurrentUser,
    ctx: ContextDep,
    jobs: JobsDep,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ProcessStarted:
    """Validate the upload, write the `pending` job row, then wake the dispatcher."""
    if idempotency_key:
        existing = await jobs.get_by_idempotency_key(owner=user, key=idempotency_key)
        if existing is not None:
            if existing.file_key != body.fileKey:
                raise Conflict("Idempotency-Key was already used for a different fileKey")
            return ProcessStarted(job_id=str(existing.job_id))
    try:
        options = ProcessOptions(
            min_speakers=body.min_speakers,
            max_speakers=body.max_speakers,
            prompt=body.prompt,
            hotwords=body.hotwords,
        )
    except ValueError as exc:
        raise InvalidInput("min_speakers must not exceed max_speakers") from exc
    language = job_language(body.language)
    await check_uploaded_object(
        storage=ctx.storage, settings=ctx.settings, owner=user, file_key=body.fileKey
    )
    if body.webhook_url:
        await check_webhook_url(body.webhook_url, ctx.settings)
    job_id = await start_processing(
        jobs=jobs,
        storage=ctx.storage,
        settings=ctx.settings,
        dispatcher=ctx.dispatcher,
        owner=user,
        file_key=body.fileKey,
        language=language,
        options=options.model_dump(exclude_none=True),
        idempotency_key=idempotency_key,
        webhook_url=body.webhook_url,
    )
    return ProcessStarted(job_id=str(job_id))


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


@router.get(
    "/status/{job_id}",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **error_responses(404)},
)
async def get_job_status(
    job_id: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The guide's status shape plus stage, error and timestamps (pre-serialized bytes)."""
    # The hot path every client polls: no dependency graph to solve (each FastAPI dependency
    # costs more than the cached answer), the same context and auth as CurrentUser/ContextDep.
    ctx: AppContext = request.app.state.ctx
    user = authenticate(authorization, ctx.settings)
    jid = parse_job_id(job_id)
    body = await ctx.status.read(jid, user) if jid is not None else None
    if body is None:
        raise JobNotFound(f"job {job_id} not found")
    return Response(content=body, media_type="application/json")


@router.get(
    "/ml-server/health",
    responses={
        200: {"model": MLHealth},
        503: {"model": MLHealth, "description": "the ML server is down, slow or unset"},
    },
)
async def check_ml_server_health(ctx: ContextDep) -> JSONResponse:
    """Ask the ML server's /health (10 s timeout); 503 with the error when it is not healthy."""
    url = ctx.settings.model_server_url
    if not url:
        return JSONResponse(
            status_code=503,
            content={
                "status": "unhealthy",
                "ml_server_url": None,
                "error": "MODEL_SERVER_URL is not configured",
            },
        )
    started = time.perf_counter()
    content: dict[str, Any] = {"ml_server_url": url}
    try:
        resp = await ctx.http.get(
            url.rstrip("/") + "/health", timeout=ctx.settings.ml_health_timeout
        )
    except Exception as exc:  # any transport failure means "unhealthy", with its reason
        content.update(
            status="unhealthy",
            response_time_ms=round((time.perf_counter() - started) * 1000, 2),
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
        return JSONResponse(status_code=503, content=content)
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    message = resp.text[:500]
    try:
        data = resp.json()
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            message = data["message"]
        # What the web page's and the CLI's language choice offer (issue 8).
        if isinstance(data, dict) and isinstance(data.get("languages"), list):
            content["languages"] = [c for c in data["languages"] if isinstance(c, str)]
    except ValueError:
        pass
    healthy = resp.status_code == 200
    content.update(
        status="healthy" if healthy else "unhealthy",
        response_time_ms=elapsed,
        http_status=resp.status_code,
        response=message,
    )
    if not healthy:
        content["error"] = f"ML server answered HTTP {resp.status_code}"
    return JSONResponse(status_code=200 if healthy else 503, content=content)
