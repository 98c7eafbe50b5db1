"""Stable error codes carried by failed jobs and failed callbacks, and the ML API's error body."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorCode(StrEnum):
    """Why a job failed. The first four are the guide's (docs/guide.md); the rest say exactly what
    went wrong."""

    # The guide's codes (dispatch from the backend to the ML server).
    TIMEOUT_ERROR = "TIMEOUT_ERROR"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
    ML_SERVER_ERROR = "ML_SERVER_ERROR"

    # Input problems found by the ML server.
    DOWNLOAD_ERROR = "DOWNLOAD_ERROR"
    DOWNLOAD_TIMEOUT = "DOWNLOAD_TIMEOUT"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    URL_NOT_ALLOWED = "URL_NOT_ALLOWED"
    UNSUPPORTED_MEDIA = "UNSUPPORTED_MEDIA"
    NO_AUDIO_TRACK = "NO_AUDIO_TRACK"
    # The language asked for is unknown, or the loaded ASR model cannot transcribe it.
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"
    # The request's `options.model` is not one of the ASR models the server holds.
    UNSUPPORTED_MODEL = "UNSUPPORTED_MODEL"

    # Processing problems.
    PROCESSING_ERROR = "PROCESSING_ERROR"
    CANCELLED = "CANCELLED"
    WORKER_LOST = "WORKER_LOST"
    # The analysis process died on this media (native crash, killed) twice: never retried again.
    MEDIA_CRASHED = "MEDIA_CRASHED"
    # The analysis process passed its memory cap (ML_WORKER_MAX_RSS_MB) or its time bound.
    MEMORY_LIMIT = "MEMORY_LIMIT"
    ANALYSIS_TIMEOUT = "ANALYSIS_TIMEOUT"

    # Backend-side outcomes.
    DISPATCH_REJECTED = "DISPATCH_REJECTED"
    JOB_LOST = "JOB_LOST"
    ML_SERVER_UNREACHABLE = "ML_SERVER_UNREACHABLE"


class RefusalCode(StrEnum):
    """Why the ML server refused a request outright (the `error_code` of its error body).

    A refusal is about the request, not a job's outcome; a refusal that is a job's own fault
    (`URL_NOT_ALLOWED`, `UNSUPPORTED_LANGUAGE`) carries the `ErrorCode` value instead.
    """

    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INVALID_REQUEST = "INVALID_REQUEST"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    QUEUE_UNAVAILABLE = "QUEUE_UNAVAILABLE"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    JOB_FINAL = "JOB_FINAL"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    HTTP_ERROR = "HTTP_ERROR"


class ErrorBody(BaseModel):
    """Every error the ML server answers: words for a person, a stable code for a program.

    The optional fields appear only where they apply (absent otherwise): `reason` on a
    401, `errors` on a 422, `retry_after_s` (equal to the Retry-After header) on a 503,
    `job_id`/`status` where a job is concerned.
    """

    model_config = ConfigDict(extra="ignore")

    detail: str
    error_code: str
    reason: str | None = None
    errors: list[dict[str, Any]] | None = None
    retry_after_s: int | None = None
    job_id: str | None = None
    status: str | None = None


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta seconds or an HTTP date); None if absent
    or unreadable. Never negative: a date in the past means "now"."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # RFC 9110 delay-seconds: digits only (no inf)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means the same
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
