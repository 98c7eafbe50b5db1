"""Request bodies bounded before they are read: a pure ASGI middleware.

A body whose `Content-Length` is over its route's limit is refused (413) before a byte of it is
read; a body without one (chunked) is counted while it streams and refused the moment it
passes the limit. Either way a client cannot make the backend hold more than the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.openai_errors import is_openai_path, reshape

REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"


class BodyTooLarge(HTTPException):
    """Raised from `receive` while streaming; FastAPI re-raises it and `app.api.errors` maps it."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the request body is over {limit} bytes")
        self.limit = limit


def too_large_body(limit: int) -> dict[str, object]:
    """The 413 answer's JSON (the same whether refused on the header or while streaming)."""
    return {
        "error": REQUEST_TOO_LARGE,
        "detail": f"the request body is over {limit} bytes",
        "max_bytes": limit,
    }


class BodyLimitMiddleware:
    """Bound every request body by `limit_for(path)` (None: the route bounds it itself)."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, limit, scope["path"])
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            # The HTTP parser already refused a malformed value; be safe anyway.
            return int(value) if value.isdigit() else None
    return None


async def _send_413(send: Send, limit: int, path: str) -> None:
    content = too_large_body(limit)
    if is_openai_path(path):
        content = reshape(413, content)
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread body is still on the wire: this connection cannot serve another.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
