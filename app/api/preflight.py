"""Routes whose caller is checked before their body is read.

FastAPI reads a request's form (a whole multipart upload, spooled to disk) before it solves the
route's dependencies, so a token or a rate limit checked as a dependency comes after the upload
has cost its size. A route of `route_class=preflight_route(check)` runs `check(request)` first:
a domain error it raises is answered (401, 429) with the body still unread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Preflight = Callable[[Request], Awaitable[None]]


def preflight_route(check: Preflight) -> type[APIRoute]:
    """An `APIRoute` class whose handler awaits `check(request)` before anything else."""

    class PreflightRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                await check(request)
                return await handler(request)

            return checked

    return PreflightRoute
