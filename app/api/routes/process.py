"""`POST /api/upload-video/request-process`: validate an upload, write the `pending` job row
and wake the dispatcher. Route only: the work is in app.services.processing."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from app.api.deps import ContextDep, CurrentUser, JobsDep, RateLimitProcess
from app.api.errors import error_responses
from app.services.client_webhooks import check_webhook_url
from app.services.errors import InvalidInput
from app.services.model_list import chosen_model
from app.services.processing import job_language, replayed_job, start_processing
from app.services.uploads import check_uploaded_object
from ecg_protocol import ProcessOptions
from ecg_protocol.languages import REQUEST_PATTERN
from ecg_protocol.public import ProcessStarted

router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))


class ProcessVideoRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    fileKey: str = Field(
        validation_alias=AliasChoices("fileKey", "file_key"), min_length=1, max_length=1024
    )
    # `auto`, one code (`ko`) or a list to detect among (`ko,en`): the shape here, the codes
    # by `job_language` (both from ecg_protocol.languages).
    language: str = Field(default="auto", max_length=256, pattern=REQUEST_PATTERN)
    min_speakers: int | None = Field(default=None, ge=1, le=32)
    max_speakers: int | None = Field(default=None, ge=1, le=32)
    # Decoding hints passed to faster-whisper (initial_prompt, hotwords).
    prompt: str | None = Field(default=None, max_length=2000)
    hotwords: str | None = Field(default=None, max_length=1000)
    # translate: the speech as English text (Whisper's translate task).
    task: Literal["transcribe", "translate"] = "transcribe"
    # One of the models GET /v1/models lists (unset or `whisper-1`: the configured one).
    model: str | None = Field(default=None, min_length=1, max_length=200)
    # Where to POST job.completed / job.failed (Standard Webhooks, CLIENT_WEBHOOK_SECRET).
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2048)


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
        # A replay answers the job it started, before the upload is checked again.
        replayed = await replayed_job(
            jobs=jobs, owner=user, idempotency_key=idempotency_key, file_key=body.fileKey
        )
        if replayed is not None:
            return ProcessStarted(job_id=str(replayed))
    try:
        options = ProcessOptions(
            min_speakers=body.min_speakers,
            max_speakers=body.max_speakers,
            prompt=body.prompt,
            hotwords=body.hotwords,
            task="translate" if body.task == "translate" else None,
        )
    except ValueError as exc:
        raise InvalidInput("min_speakers must not exceed max_speakers") from exc
    language = job_language(body.language)
    model = await chosen_model(
        body.model, http=ctx.http, ml_server_url=ctx.settings.model_server_url
    )
    if model is not None:
        options = options.model_copy(update={"model": model})
    await check_uploaded_object(
        storage=ctx.storage, settings=ctx.settings, owner=user, file_key=body.fileKey
    )
    if body.webhook_url:
        await check_webhook_url(body.webhook_url, ctx.settings)
    job_id = await start_processing(
        jobs=jobs,
        dispatcher=ctx.dispatcher,
        owner=user,
        file_key=body.fileKey,
        language=language,
        options=options.model_dump(exclude_none=True),
        idempotency_key=idempotency_key,
        webhook_url=body.webhook_url,
    )
    return ProcessStarted(job_id=str(job_id))
