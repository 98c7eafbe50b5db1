"""Domain errors raised by services; `app.api.errors` maps each to one HTTP answer."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the backend refuses on purpose; never a server fault."""

    status_code = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidInput(DomainError):
    """Well-formed but unacceptable input: 400 (422 is reserved for schema validation)."""

    status_code = 400
    code = "INVALID_INPUT"


class UnsupportedLanguage(InvalidInput):
    """A request's `language` names no language Whisper knows."""

    code = "UNSUPPORTED_LANGUAGE"


class NotAuthenticated(DomainError):
    status_code = 401
    code = "NOT_AUTHENTICATED"


class InvalidSignature(DomainError):
    status_code = 401
    code = "INVALID_SIGNATURE"


class Forbidden(DomainError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(DomainError):
    status_code = 404
    code = "NOT_FOUND"


class JobNotFound(NotFound):
    code = "JOB_NOT_FOUND"


class FileNotFound(NotFound):
    code = "FILE_NOT_FOUND"


class Conflict(DomainError):
    status_code = 409
    code = "CONFLICT"


class FileTooLarge(DomainError):
    status_code = 413
    code = "FILE_TOO_LARGE"


class UnsupportedContentType(DomainError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(DomainError):
    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after=retry_after_s)
        self.retry_after_s = retry_after_s


class StorageUnavailable(DomainError):
    """The object store did not answer (S3 down or unreachable): retry later, nothing changed."""

    status_code = 503
    code = "STORAGE_UNAVAILABLE"


class WebhookMisuse(DomainError):
    """A frontend called the ML server's webhook instead of the status endpoint (docs/guide.md)."""

    status_code = 400
    code = "WRONG_ENDPOINT"


class MediaRejected(DomainError):
    """A one-call request whose job failed on its input; `error_code` is the pipeline's code."""

    status_code = 400
    code = "MEDIA_REJECTED"


class AnalysisFailed(DomainError):
    """A one-call request whose job failed in the analysis; `error_code` says how."""

    status_code = 502
    code = "ANALYSIS_FAILED"


class StillProcessing(DomainError):
    """A one-call request that outlived its wait; the job goes on and can be polled."""

    status_code = 504
    code = "STILL_PROCESSING"
