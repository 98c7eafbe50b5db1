"""Errors of the OpenAI-compatible `/v1` routes in OpenAI's shape and with OpenAI's statuses.

`{"error": {"message", "type", "param", "code"}}`: `type` is OpenAI's category
(`invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`), `code`
our stable code (e.g. `NO_AUDIO_TRACK`), `param` the form field at fault where one is. Our
extras (job_id, detail, max_bytes) sit beside them in the same object. OpenAI answers 400 where
we answer 415 (an unsupported file) or 422 (a parameter out of its schema), so `/v1` does too.
"""

from __future__ import annotations

from typing import Any

OPENAI_PREFIX = "/v1/"

# What OpenAI answers in place of ours.
_STATUS = {415: 400, 422: 400}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def openai_status(status: int) -> int:
    """OpenAI's status for ours (400 for an unsupported file or an invalid parameter)."""
    return _STATUS.get(status, status)


def openai_type(status: int) -> str:
    """OpenAI's error category for an HTTP status."""
    if status >= 500:
        return "server_error"
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error"


def openai_error_body(
    status: int, code: str, message: str, *, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's `{"error": {...}}` for a refusal with our `code`; `extra` rides beside."""
    code = str(extra.pop("error_code", None) or code)
    return {
        "error": {
            **extra,
            "message": message,
            "type": openai_type(status),
            "param": param,
            "code": code,
        }
    }


def reshape(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Our `{"error": CODE, "detail": text, ...}` in OpenAI's shape."""
    extra = {k: v for k, v in body.items() if k not in ("error", "detail", "param")}
    param = body.get("param")
    return openai_error_body(
        status,
        str(body.get("error", "ERROR")),
        str(body.get("detail", "")),
        param=str(param) if param else None,
        **extra,
    )
