"""The one place where domain errors, validation errors and database outages become HTTP
answers, and where their bodies are declared for the OpenAPI document.

Bad input of any kind is a clear 4xx with a JSON body: 422 only for request validation (its
`detail` is a list), every other refusal an `ErrorBody` (`detail` is a string). A database
that is down or restarting is a 503 with `Retry-After`. A 500 only ever means a bug, and it is
logged with its traceback but never shows internals to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.body_limit import BodyTooLarge, too_large_body
from app.api.openai_errors import is_openai_path, openai_error_body, openai_status, reshape
from app.services.errors import AnalysisFailed, DomainError, RateLimited, StillProcessing

logger = logging.getLogger(__name__)

# Inputs can be megabytes (a whole result); error lists keep only where and why.
_MAX_ERRORS = 20
# What a client (or the ML server's callback retry) is told to wait while the database is away.
DB_RETRY_AFTER_S = 5


class ErrorBody(BaseModel):
    """Every refusal other than request validation; some errors add fields (e.g. max_bytes)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="stable code, e.g. INVALID_INPUT, JOB_NOT_FOUND")
    detail: str = Field(description="what was wrong, for a person")


class OpenAIError(BaseModel):
    """OpenAI's error object; ours adds fields (job_id, error_code, detail)."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every refusal of the OpenAI-compatible `/v1` routes, validation included."""

    error: OpenAIError


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: the request did not match the declared schema (FastAPI's shape, plus `error`)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(default="VALIDATION_ERROR")
    detail: list[ValidationIssue]


_DESCRIPTIONS: dict[int, str] = {
    400: "invalid input (e.g. a malformed file key, an empty file, min over max speakers)",
    401: "missing or invalid token or signature",
    403: "not allowed",
    404: "not found (another user's job or key reads the same)",
    409: "conflict with the job's state or an earlier request",
    413: "over the size limit",
    415: "content type not accepted",
    429: "rate limited; see Retry-After",
    502: "the analysis failed (error_code says how)",
    503: "a dependency (the database) is unavailable; retry after Retry-After",
    504: "still processing past the wait; poll the status of job_id",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: these refusals as `ErrorBody`, and 422."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    out[422] = {"model": ValidationErrorBody, "description": "request validation failed"}
    return out


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the `/v1` routes: these refusals in OpenAI's shape and statuses (a
    validation error or an unsupported file is a 400 there)."""
    answered = sorted({openai_status(status) for status in (*statuses, 422)})
    return {
        status: {"model": OpenAIErrorBody, "description": _DESCRIPTIONS[status]}
        for status in answered
    }


def clean_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the offending input or doc URLs."""
    out: list[dict[str, Any]] = []
    for err in list(errors)[:_MAX_ERRORS]:
        out.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "invalid value")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


def validation_response(
    errors: Sequence[Any], *, extra: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": "VALIDATION_ERROR", "detail": clean_errors(errors)}
    if extra:
        body.update(extra)
    return JSONResponse(status_code=422, content=body)


def _answer(
    request: Request,
    status_code: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Our error body, or on the `/v1` routes OpenAI's shape and status."""
    if is_openai_path(request.url.path):
        body = reshape(status_code, body)
        status_code = openai_status(status_code)
    return JSONResponse(status_code=status_code, content=body, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body: dict[str, Any] = {"error": exc.code, "detail": exc.message, **exc.extra}
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status_code == 503:
        headers["Retry-After"] = "5"
    if isinstance(exc, AnalysisFailed | StillProcessing):
        # OpenAI's clients retry 5xx by re-sending the file, which would start a second job;
        # this header (which they honour) says a retry cannot help.
        headers["x-should-retry"] = "false"
    return _answer(request, exc.status_code, body, headers)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if is_openai_path(request.url.path):
        # OpenAI answers 400 naming the parameter (`param`) for a value out of its schema.
        detail = clean_errors(exc.errors())
        message = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail)
        locs = [d["loc"] for d in detail]
        param = str(locs[0][-1]) if locs and len(locs[0]) > 1 else None
        body = openai_error_body(422, "VALIDATION_ERROR", message, param=param, detail=detail)
        return JSONResponse(status_code=openai_status(422), content=body)
    return validation_response(exc.errors())


async def _pydantic_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return validation_response(exc.errors(include_url=False, include_input=False))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyTooLarge):
        # The rest of the body is still on the wire: this connection cannot serve another.
        return _answer(request, 413, too_large_body(exc.limit), {"Connection": "close"})
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return _answer(
        request,
        exc.status_code,
        {"error": _status_code_name(exc.status_code), "detail": detail},
        dict(exc.headers or {}),
    )


def _status_code_name(status_code: int) -> str:
    """A stable code for a plain HTTP refusal: NOT_FOUND, METHOD_NOT_ALLOWED, …"""
    try:
        return HTTPStatus(status_code).name
    except ValueError:
        return f"HTTP_{status_code}"


def _unavailable(request: Request, detail: str) -> JSONResponse:
    return _answer(
        request,
        503,
        {"error": "DATABASE_UNAVAILABLE", "detail": detail, "retry_after": DB_RETRY_AFTER_S},
        {"Retry-After": str(DB_RETRY_AFTER_S)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is down, restarting or out of connections: 503, never a 500."""
    if isinstance(exc, IntegrityError):
        # Two requests raced on a unique key: the caller may simply retry.
        logger.warning("conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        body = {"error": "CONFLICT", "detail": "the request conflicts with a concurrent one"}
        return _answer(request, 409, body)
    if isinstance(exc, DataError):
        logger.warning(
            "database refused a value on %s %s: %s", request.method, request.url.path, exc.orig
        )
        body = {"error": "INVALID_INPUT", "detail": "a value is not acceptable to the database"}
        return _answer(request, 400, body)
    if isinstance(exc, SAOperationalError | DisconnectionError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    else:
        # Not an outage by type (ProgrammingError, InternalError…): keep the traceback.
        logger.exception("database error on %s %s", request.method, request.url.path)
    return _unavailable(request, "the database is unavailable; retry shortly")


async def _connection_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("connection failure on %s %s: %s", request.method, request.url.path, exc)
    return _unavailable(request, "a backing service is unreachable; retry shortly")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": "INTERNAL_ERROR", "detail": "internal server error"}
    return _answer(request, 500, body)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _pydantic_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for db_error in (DBAPIError, DisconnectionError, PoolTimeoutError):
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(ConnectionError, _connection_error)
    app.add_exception_handler(Exception, _unexpected)
