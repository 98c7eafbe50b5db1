"""ML server routes (docs/ml-server.md): thin; the work is in the store, executor and runner."""

from __future__ import annotations

import json
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from ecg_protocol import (
    CancelAccepted,
    ErrorBody,
    ErrorCode,
    JobRecord,
    MLJobStatus,
    ProcessAccepted,
    ProcessRequest,
    RefusalCode,
    SignatureError,
    verify_signature,
)
from ecg_protocol.bodyless import bodyless_signed_content
from ecg_protocol.health import LanguageName, MLServerHealth, MLServerLanguages
from ecg_protocol.languages import WHISPER_LANGUAGES, LanguageError
from ecg_protocol.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
)
from ecg_serving.net import ResolutionError, UrlGuard, URLNotAllowed
from ml_server import metrics
from ml_server.config import MLSettings
from ml_server.errors import error_response
from ml_server.executor import JobExecutor, QueueUnavailable, publish_stats
from ml_server.languages import held_models, resolve_request, supported_languages
from ml_server.store import JobStore

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _settings(request: Request) -> MLSettings:
    settings: MLSettings = request.app.state.settings
    return settings


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.store
    return store


def _executor(request: Request) -> JobExecutor:
    executor: JobExecutor = request.app.state.executor
    return executor


SettingsDep = Annotated[MLSettings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
ExecutorDep = Annotated[JobExecutor, Depends(_executor)]

router = APIRouter()


_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "URL_NOT_ALLOWED: a URL is not http(s) or is private; "
        "UNSUPPORTED_LANGUAGE: an unknown code or one the ASR model cannot transcribe",
    },
    401: {"model": ErrorBody, "description": "INVALID_SIGNATURE"},
    413: {"model": ErrorBody, "description": "REQUEST_TOO_LARGE"},
    422: {"model": ErrorBody, "description": "INVALID_REQUEST (with `errors`)"},
    503: {
        "model": ErrorBody,
        "description": "QUEUE_UNAVAILABLE (the broker is down; nothing kept, retry after the "
        "Retry-After header) or ML_SERVER_ERROR (shutting down)",
    },
}


def _version() -> str:
    try:
        return version("ecg")
    except PackageNotFoundError:
        return "unknown"


def _check_urls(guard: UrlGuard, job: ProcessRequest) -> None:
    """Refuse forbidden URLs up front; a name that does not resolve now is left to the job."""
    for field, url in (("video_url", job.video_url), ("fastapi_base_url", job.fastapi_base_url)):
        try:
            guard.check_url(url)
        except ResolutionError:
            logger.info(
                "job_id=%s %s does not resolve yet; the job will report it", job.job_id, field
            )
        except URLNotAllowed as exc:
            raise _Refused(f"{field}: {exc.message}") from exc


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _BodyTooLarge(Exception):
    """The body passed MAX_BODY_BYTES (declared or streamed); nothing more is read."""


def _missing_signature(request: Request, settings: MLSettings) -> JSONResponse | None:
    """A 401 for a request whose signature headers are absent, decided before any body is read."""
    if not settings.ml_require_signature:
        return None
    headers = request.headers
    standard = [h for h in (ID_HEADER, TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER) if h in headers]
    if settings.ml_webhook_strict and len(standard) < 3:
        reason, message = "strict_mode", "the Standard Webhooks headers are required"
    elif not standard and SIGNATURE_HEADER not in headers:
        reason, message = "missing_signature", "the request is not signed"
    else:
        return None
    logger.warning("refused %s %s: %s", request.method, request.url.path, reason)
    return error_response(401, RefusalCode.INVALID_SIGNATURE, message, reason=reason)


def _bad_signature(request: Request, settings: MLSettings, signed: bytes) -> JSONResponse | None:
    """A 401 unless `signed` verifies (strict: Standard Webhooks with the replay window)."""
    if not settings.ml_require_signature:
        return None
    try:
        verify_signature(
            signed,
            request.headers,
            request.app.state.signing_secret,  # read once at start, not from disk per request
            tolerance_s=settings.webhook_tolerance_s,
            strict=settings.ml_webhook_strict,
        )
    except SignatureError as exc:
        logger.warning("refused %s %s: %s", request.method, request.url.path, exc.reason)
        return error_response(401, RefusalCode.INVALID_SIGNATURE, exc.message, reason=exc.reason)
    return None


async def _read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused on its Content-Length or as soon as the stream passes `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _BodyTooLarge
    return bytes(body)


def _verify_bodyless(request: Request, settings: MLSettings, job_id: str) -> JSONResponse | None:
    """`GET`/`DELETE /jobs/{id}` sign their method and path (ecg_protocol.bodyless)."""
    refused = _missing_signature(request, settings)
    if refused is not None:
        return refused
    # The decoded job id, as the client meant it (however the URL was escaped on the way).
    signed = bodyless_signed_content(request.method, f"/jobs/{job_id}")
    return _bad_signature(request, settings, signed)


@router.post("/process", status_code=202, response_model=ProcessAccepted, responses=_REFUSALS)
async def process(
    request: Request, settings: SettingsDep, store: StoreDep, executor: ExecutorDep
) -> Response:
    """Queue one analysis (signed by the backend); the same job id twice does the work once."""
    # Unsigned and oversized requests are refused before their body is read (or while it streams).
    refused = _missing_signature(request, settings)
    if refused is not None:
        return refused
    try:
        body = await _read_bounded(request, MAX_BODY_BYTES)
    except _BodyTooLarge:
        return error_response(
            413, RefusalCode.REQUEST_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes"
        )
    refused = _bad_signature(request, settings, body)
    if refused is not None:
        return refused
    try:
        job = ProcessRequest.model_validate(json.loads(body))
    except RecursionError:
        return error_response(
            422, RefusalCode.INVALID_REQUEST, "invalid request body: nested too deeply"
        )
    except (ValueError, ValidationError) as exc:
        # Without the inputs: they may hold NaN, lone surrogates or the whole body.
        errors = (
            exc.errors(include_url=False, include_input=False, include_context=False)
            if isinstance(exc, ValidationError)
            else None
        )
        return error_response(
            422, RefusalCode.INVALID_REQUEST, f"invalid request body: {exc}"[:500], errors=errors
        )
    held = held_models(settings)
    chosen = job.options.model
    if chosen is not None and chosen not in held:
        message = f"this server holds no ASR model {chosen!r} (held: {', '.join(held)})"
        logger.warning("refused job_id=%s: %s", job.job_id, message)
        return error_response(400, ErrorCode.UNSUPPORTED_MODEL, message)
    try:
        resolve_request(job.language, supported_languages(settings, held.get(chosen or "")))
    except LanguageError as exc:
        logger.warning("refused job_id=%s: %s", job.job_id, exc)
        return error_response(400, ErrorCode.UNSUPPORTED_LANGUAGE, str(exc))
    guard = UrlGuard.from_entries(settings.allowed_private_hosts)
    try:
        # getaddrinfo blocks; keep it off the event loop.
        await run_in_threadpool(_check_urls, guard, job)
    except _Refused as exc:
        logger.warning("refused job_id=%s: %s", job.job_id, exc.message)
        return error_response(400, ErrorCode.URL_NOT_ALLOWED, exc.message)
    # The store and a Celery publish do network I/O: keep them off the event loop.
    return await run_in_threadpool(_accept, store, executor, job)


def _accept(store: JobStore, executor: JobExecutor, job: ProcessRequest) -> JSONResponse:
    """Record and queue the job once; a duplicate id reports the existing job's status."""
    if store.create_if_absent(job):
        try:
            executor.submit(job)
        except QueueUnavailable as exc:
            # Nothing was kept (the executor forgot the record): the backend's retry resubmits.
            logger.warning("job_id=%s not accepted: %s", job.job_id, exc.message)
            return error_response(
                503,
                RefusalCode.QUEUE_UNAVAILABLE,
                exc.message,
                headers={"Retry-After": str(exc.retry_after_s)},
                job_id=job.job_id,
                retry_after_s=exc.retry_after_s,
            )
        except RuntimeError as exc:
            # Shutting down: the backend retries the dispatch against a live server.
            store.update(
                job.job_id,
                status=MLJobStatus.FAILED,
                error_code=ErrorCode.ML_SERVER_ERROR.value,
                error_message=str(exc),
            )
            return error_response(503, ErrorCode.ML_SERVER_ERROR, str(exc))
        metrics.JOBS_ACCEPTED.inc()
        logger.info("queued job_id=%s", job.job_id)
        return _accepted(ProcessAccepted(job_id=job.job_id, status=MLJobStatus.QUEUED))
    record = store.get(job.job_id)
    status = record.status if record else MLJobStatus.QUEUED
    logger.info("duplicate /process job_id=%s status=%s: no new work", job.job_id, status.value)
    return _accepted(ProcessAccepted(job_id=job.job_id, status=status))


def _accepted(body: BaseModel) -> JSONResponse:
    return JSONResponse(status_code=202, content=body.model_dump(mode="json"))


@router.get("/health", response_model=MLServerHealth)
def health(executor: ExecutorDep, settings: SettingsDep) -> MLServerHealth:
    """Liveness plus what the workers are doing; answers while jobs run."""
    stats = executor.stats()
    return MLServerHealth(
        models_loaded=stats.models_loaded,
        queue_depth=stats.queue_depth,
        running=stats.running,
        workers=stats.workers,
        version=_version(),
        languages=list(supported_languages(settings)),
    )


@router.get("/languages", response_model=MLServerLanguages)
def languages(settings: SettingsDep) -> MLServerLanguages:
    """The languages the configured ASR model can transcribe (narrowed by ML_LANGUAGES)."""
    english = settings.ml_asr_english_model.strip() or None
    return MLServerLanguages(
        asr_model=settings.ml_asr_model,
        english_model=english,
        models=list(held_models(settings)),
        languages=[
            LanguageName(code=c, name=WHISPER_LANGUAGES[c]) for c in supported_languages(settings)
        ],
    )


_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "INVALID_SIGNATURE"},
    404: {"model": ErrorBody, "description": "JOB_NOT_FOUND (unknown, or purged after retention)"},
}


@router.get("/jobs/{job_id}", response_model=JobRecord, responses=_JOB_ERRORS)
def get_job(job_id: str, request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    """State, stage, progress, and the result once completed (signed like `/process`)."""
    refused = _verify_bodyless(request, settings, job_id)
    if refused is not None:
        return refused
    record = store.get(job_id)
    if record is None:
        return _unknown_job(job_id)
    return Response(record.model_dump_json(by_alias=True), media_type="application/json")


def _unknown_job(job_id: str) -> JSONResponse:
    return error_response(404, RefusalCode.JOB_NOT_FOUND, f"unknown job {job_id}", job_id=job_id)


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=CancelAccepted,
    responses={
        **_JOB_ERRORS,
        409: {"model": ErrorBody, "description": "JOB_FINAL (nothing left to cancel)"},
    },
)
def cancel_job(
    job_id: str, request: Request, settings: SettingsDep, store: StoreDep
) -> JSONResponse:
    """Cancel (signed like `/process`): a queued job at once, a running one at its next stage."""
    refused = _verify_bodyless(request, settings, job_id)
    if refused is not None:
        return refused
    if store.request_cancel(job_id):
        record = store.get(job_id)
        status = record.status if record else MLJobStatus.CANCELLED
        logger.info("cancel requested job_id=%s status=%s", job_id, status.value)
        return _accepted(CancelAccepted(job_id=job_id, status=status))
    record = store.get(job_id)
    if record is None:
        return _unknown_job(job_id)
    return error_response(
        409,
        RefusalCode.JOB_FINAL,
        f"the job is already {record.status.value}",
        job_id=job_id,
        status=record.status.value,
    )


@router.get("/metrics")
def prometheus(executor: ExecutorDep) -> Response:
    """Prometheus exposition: jobs by outcome, stage durations, queue depth, callbacks."""
    publish_stats(executor.stats())
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
