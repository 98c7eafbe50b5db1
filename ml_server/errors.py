"""Every error the ML server answers, in one shape: `ecg_protocol.ErrorBody`.

Routes build theirs with `error_response`; `install_error_handlers` gives the same shape to what
the framework answers on its own (an unknown path, a wrong method, an unhandled exception) and,
in Celery mode, to a job store outage (a 503 the backend retries).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecg_protocol import ErrorBody, ErrorCode, RefusalCode

logger = logging.getLogger(__name__)

STORE_RETRY_AFTER_S = 5

_HTTP_CODES = {404: RefusalCode.NOT_FOUND, 405: RefusalCode.METHOD_NOT_ALLOWED}


class _AsciiJSON(JSONResponse):
    """Escapes everything outside ASCII: a refusal may quote input that is not valid UTF-8
    (a lone surrogate), which the default rendering cannot encode (a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, default=str).encode()


def error_response(
    http_status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An `ErrorBody` answer; `extra` fills its optional fields (`reason`, `errors`, …).

    Built as a dict, not validated through the model: the message may quote hostile input (a
    lone surrogate) that pydantic would refuse to encode. The field names are still the model's.
    """
    unknown = extra.keys() - ErrorBody.model_fields.keys()
    if unknown:
        raise TypeError(f"ErrorBody has no field {sorted(unknown)}")
    content = {"detail": message, "error_code": str(code)}
    content.update({k: v for k, v in extra.items() if v is not None})
    return _AsciiJSON(status_code=http_status, content=content, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, RefusalCode.HTTP_ERROR)
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return error_response(422, RefusalCode.INVALID_REQUEST, "invalid request", errors=errors)


async def _unhandled(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback; the caller gets the shape, not the exception's text.
    return error_response(500, ErrorCode.ML_SERVER_ERROR, "internal error in the ML server")


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    logger.error(
        "job store unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    return error_response(
        503,
        RefusalCode.STORE_UNAVAILABLE,
        f"the job store is unavailable ({type(exc).__name__}); retry later",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        retry_after_s=STORE_RETRY_AFTER_S,
    )


def install_error_handlers(app: FastAPI, *, redis_store: bool) -> None:
    """Framework errors in the one shape; with the Redis store, its outages as a 503."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unhandled)
    if redis_store:
        import redis

        app.add_exception_handler(redis.RedisError, _store_unavailable)
