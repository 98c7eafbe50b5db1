"""OpenAI-compatible one-call transcription: `POST /v1/audio/transcriptions` and `/translations`.

The official `openai` client works unchanged with `base_url=http://host:8000/v1`. Each call is
an ordinary job (stored upload, job row, rate limit, owner): the request is held open until the
job is final, as OpenAI's is, and the job stays readable through the status and export routes.
"""

from __future__ import annotations

import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Header, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from app.api.deps import AppContext, ContextDep, JobsDep, SettingsDep, client_ip
from app.api.errors import openai_error_responses
from app.api.openai_errors import openai_error_body
from app.api.preflight import preflight_route
from app.core.config import Settings
from app.models.job import Job
from app.services.auth import ANONYMOUS, authenticate
from app.services.client_webhooks import check_webhook_url
from app.services.errors import (
    AnalysisFailed,
    DomainError,
    InvalidInput,
    MediaRejected,
    StillProcessing,
)
from app.services.job_service import JobService
from app.services.model_list import chosen_model
from app.services.openai_compat import (
    MEDIA_TYPES,
    ResponseFormat,
    Task,
    sse,
    stream_events,
    transcription_body,
    wait_for_final,
)
from app.services.processing import job_language, start_processing
from app.services.storage import make_file_key
from app.services.uploads import check_upload_size, normalize_content_type
from ecg_protocol import AnalysisResult, ErrorCode, JobStatus, ProcessOptions

logger = logging.getLogger(__name__)

# Failures caused by the file itself answer 400, as OpenAI's API does for bad audio.
_INPUT_CODES = frozenset(
    {
        ErrorCode.UNSUPPORTED_MEDIA,
        ErrorCode.NO_AUDIO_TRACK,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.DOWNLOAD_ERROR,
        "UNSUPPORTED_LANGUAGE",
        "MEDIA_CRASHED",
    }
)


def _caller(settings: Settings, authorization: str | None) -> str:
    """The caller: OpenAI clients always send `Bearer <api key>`; without JWT_SECRET (no
    accounts on this server) that key names nobody and the caller is anonymous."""
    if not settings.jwt_secret and settings.allow_anonymous:
        return ANONYMOUS
    return authenticate(authorization, settings)


async def openai_user(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The caller (already checked by `_authorize_first` before the body was read)."""
    return _caller(settings, authorization)


async def _authorize_first(request: Request) -> None:
    """The token and the request-process rate limit, before a byte of the upload is read."""
    ctx: AppContext = request.app.state.ctx
    _caller(ctx.settings, request.headers.get("authorization"))
    await ctx.process_limiter.hit(client_ip(request, ctx.settings))


OpenAIUser = Annotated[str, Depends(openai_user)]
router = APIRouter(
    prefix="/v1/audio",
    tags=["openai-compatible"],
    responses=openai_error_responses(400, 401, 413, 415, 429, 502, 503, 504),
    route_class=preflight_route(_authorize_first),
)


def _content_type(upload: UploadFile, settings: Settings) -> str:
    """The part's type when accepted, else the one its file name implies (clients often send
    application/octet-stream)."""
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared in settings.content_types:
        return declared
    guessed, _ = mimetypes.guess_type(upload.filename or "")
    return normalize_content_type(guessed or declared or "application/octet-stream", settings)


async def _transcribe(
    *,
    ctx: AppContext,
    jobs: JobService,
    user: str,
    file: UploadFile,
    task: Task,
    language: str | None,
    options: ProcessOptions,
    response_format: ResponseFormat,
    granularities: list[str],
    webhook_url: str | None = None,
) -> Response:
    job_id = await _store_and_start(
        ctx=ctx,
        jobs=jobs,
        user=user,
        file=file,
        language=language,
        options=options,
        webhook_url=webhook_url,
    )
    job = await wait_for_final(
        ctx.session_factory, job_id=job_id, owner=user, timeout_s=ctx.settings.sync_wait_timeout_s
    )
    body = transcription_body(
        _outcome(job, job_id),
        response_format,
        task=task,
        granularities=granularities,
    )
    logger.info("one-call %s job_id=%s format=%s", task, job_id, response_format)
    return Response(
        content=body.encode("utf-8"),
        media_type=MEDIA_TYPES[response_format],
        headers={"X-ECG-Job-Id": str(job_id)},
    )


def _outcome(job: Job | None, job_id: uuid.UUID) -> AnalysisResult:
    """The final job's result; the domain error that answers the call otherwise."""
    if job is None:
        raise StillProcessing(
            f"job {job_id} is still processing; poll GET /api/upload-video/status/{job_id}",
            job_id=str(job_id),
        )
    if job.status != JobStatus.COMPLETED.value or job.result is None:
        error = MediaRejected if job.error_code in _INPUT_CODES else AnalysisFailed
        raise error(
            job.error_message or "the analysis failed",
            job_id=str(job_id),
            error_code=job.error_code,
        )
    return AnalysisResult.model_validate(job.result)


# While the job runs, a comment line every so often keeps proxies from closing the stream.
KEEPALIVE_S = 10.0


async def _event_stream(ctx: AppContext, *, job_id: uuid.UUID, user: str) -> AsyncIterator[bytes]:
    """OpenAI's transcription events once the job is final; an `error` event if it failed."""
    deadline = time.monotonic() + ctx.settings.sync_wait_timeout_s
    job = None
    while job is None and (left := deadline - time.monotonic()) > 0:
        job = await wait_for_final(
            ctx.session_factory, job_id=job_id, owner=user, timeout_s=min(KEEPALIVE_S, left)
        )
        if job is None:
            yield b": processing\n\n"
    try:
        result = _outcome(job, job_id)
    except DomainError as exc:
        yield sse(openai_error_body(exc.status_code, exc.code, exc.message, **exc.extra))
        return
    for event in stream_events(result):
        yield sse(event)
    logger.info("one-call stream job_id=%s", job_id)


async def _store_and_start(
    *,
    ctx: AppContext,
    jobs: JobService,
    user: str,
    file: UploadFile,
    language: str | None,
    options: ProcessOptions,
    webhook_url: str | None,
) -> uuid.UUID:
    """Check the upload, store it under the caller's prefix and write its job; the job id."""
    settings = ctx.settings
    check_upload_size(_size(file), settings)
    checked_language = job_language(language)
    content_type = _content_type(file, settings)
    if webhook_url:
        await check_webhook_url(webhook_url, settings)
    key = make_file_key(user, file.filename or "audio")
    await ctx.storage.put_file(key, content_type, file.file)
    return await start_processing(
        jobs=jobs,
        dispatcher=ctx.dispatcher,
        owner=user,
        file_key=key,
        language=checked_language,
        options=options.model_dump(exclude_none=True),
        webhook_url=webhook_url,
    )


def _size(file: UploadFile) -> int:
    """The uploaded part's size (the form parser counts it; else measured on the spool)."""
    if file.size is not None:
        return file.size
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return size


FormatForm = Annotated[ResponseFormat, Form(description="json, text, srt, vtt or verbose_json")]
PromptForm = Annotated[
    str | None, Form(max_length=2000, description="text to steer the style (initial_prompt)")
]
TemperatureForm = Annotated[float, Form(ge=0.0, le=1.0)]
WebhookForm = Annotated[
    str | None, Form(max_length=2048, description="also POST job.completed/failed here")
]
StreamForm = Annotated[
    bool,
    Form(description="true: server-sent events (transcript.text.delta, transcript.text.done)"),
]
ModelForm = Annotated[
    str,
    Form(
        max_length=200,
        description="a model GET /v1/models lists; whisper-1 = the server's configured model",
    ),
]


# The rate limit is counted by `_authorize_first`, before the body (not as a dependency).
@router.post("/transcriptions", response_class=Response)
async def create_transcription(
    ctx: ContextDep,
    jobs: JobsDep,
    user: OpenAIUser,
    file: UploadFile,
    model: ModelForm = "whisper-1",
    language: Annotated[
        str | None, Form(pattern=r"^[A-Za-z]{2,8}$", description="ISO-639-1 code; unset: auto")
    ] = None,
    prompt: PromptForm = None,
    response_format: FormatForm = "json",
    timestamp_granularities: Annotated[
        list[Literal["word", "segment"]] | None, Form(alias="timestamp_granularities[]")
    ] = None,
    temperature: TemperatureForm = 0.0,
    hotwords: Annotated[str | None, Form(max_length=1000)] = None,
    webhook_url: WebhookForm = None,
    stream: StreamForm = False,
) -> Response:
    """Transcribe an audio or video file in one call (OpenAI's API, plus speakers, loudness,
    pitch and emotion in verbose_json); `stream=true` answers OpenAI's server-sent events."""
    options = ProcessOptions(
        prompt=prompt,
        hotwords=hotwords,
        temperature=temperature or None,
        model=await chosen_model(model, http=ctx.http, ml_server_url=ctx.settings.model_server_url),
    )
    if stream:
        if response_format not in ("json", "text"):
            raise InvalidInput(
                "stream=true streams text: response_format must be json or text",
                param="response_format",
            )
        job_id = await _store_and_start(
            ctx=ctx,
            jobs=jobs,
            user=user,
            file=file,
            language=language,
            options=options,
            webhook_url=webhook_url,
        )
        return StreamingResponse(
            _event_stream(ctx, job_id=job_id, user=user),
            media_type="text/event-stream",
            headers={"X-ECG-Job-Id": str(job_id), "Cache-Control": "no-cache"},
        )
    return await _transcribe(
        ctx=ctx,
        jobs=jobs,
        user=user,
        file=file,
        task="transcribe",
        language=language,
        options=options,
        response_format=response_format,
        granularities=list(timestamp_granularities or ["segment"]),
        webhook_url=webhook_url,
    )


@router.post("/translations", response_class=Response)
async def create_translation(
    ctx: ContextDep,
    jobs: JobsDep,
    user: OpenAIUser,
    file: UploadFile,
    model: ModelForm = "whisper-1",
    prompt: PromptForm = None,
    response_format: FormatForm = "json",
    temperature: TemperatureForm = 0.0,
    stream: StreamForm = False,
) -> Response:
    """Translate speech into English text in one call (OpenAI's API)."""
    if stream:
        # OpenAI's translations do not stream either; refused rather than ignored.
        raise InvalidInput(
            "stream=true is offered on /v1/audio/transcriptions only", param="stream"
        )
    options = ProcessOptions(
        task="translate",
        prompt=prompt,
        temperature=temperature or None,
        model=await chosen_model(model, http=ctx.http, ml_server_url=ctx.settings.model_server_url),
    )
    return await _transcribe(
        ctx=ctx,
        jobs=jobs,
        user=user,
        file=file,
        task="translate",
        language=None,
        options=options,
        response_format=response_format,
        granularities=["segment"],
    )
