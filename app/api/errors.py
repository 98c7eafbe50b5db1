"""The one place where domain errors and validation errors become HTTP answers.

Bad input of any kind is a clear 4xx with a JSON body; a 500 only ever means a bug, and it is
logged with its traceback but never shows internals to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.services.errors import DomainError, RateLimited

logger = logging.getLogger(__name__)

# Inputs can be megabytes (a whole result); error lists keep only where and why.
_MAX_ERRORS = 20


def clean_errors(errors: Any) -> list[dict[str, Any]]:
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


def validation_response(errors: Any, *, extra: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": "VALIDATION_ERROR", "detail": clean_errors(errors)}
    if extra:
        body.update(extra)
    return JSONResponse(status_code=422, content=body)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body: dict[str, Any] = {"error": exc.code, "detail": exc.message, **exc.extra}
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(status_code=exc.status_code, content=body, headers=headers)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc.errors())


async def _pydantic_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return validation_response(exc.errors(include_url=False, include_input=False))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": "HTTP_ERROR", "detail": exc.detail},
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=500, content={"error": "INTERNAL_ERROR", "detail": "internal server error"}
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _pydantic_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
