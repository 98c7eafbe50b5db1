"""Headers a browser expects on every answer, page and API alike: a Content-Security-Policy
(no inline script or style on the page, no framing), `X-Frame-Options: DENY` for browsers that
predate `frame-ancestors`, and `X-Content-Type-Options: nosniff`. A pure ASGI middleware.

The page (app/static) loads only its own files; it plays and uploads media at the storage's
origin (the backend's own for the embedded storage, the S3 endpoint otherwise). The API
reference pages (/docs, /redoc) are FastAPI's, which start with an inline script: they get
their own policy with `'unsafe-inline'` and nothing else relaxed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings

DOCS_PATHS = ("/docs", "/redoc")
# Virtual-hosted and path-style presigned URLs of AWS S3 (no S3_ENDPOINT_URL set).
AWS_S3_ORIGINS = "https://*.amazonaws.com"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def media_origins(settings: Settings) -> list[str]:
    """Where the page may fetch and play media besides itself: the backend's public URL (the
    embedded storage signs URLs on it) and the S3 endpoint when one is used."""
    origins = [o for o in (_origin(settings.fastapi_base_url),) if o]
    if settings.uses_s3:
        s3 = _origin(settings.s3_endpoint_url) if settings.s3_endpoint_url else AWS_S3_ORIGINS
        if s3:
            origins.append(s3)
    return origins


def page_policy(settings: Settings) -> str:
    """The Content-Security-Policy of the page and of every API answer."""
    storage = " ".join(media_origins(settings))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            f"media-src 'self' blob: {storage}".rstrip(),
            f"connect-src 'self' {storage}".rstrip(),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


class SecurityHeadersMiddleware:
    """Add the policy and the framing and sniffing headers to every HTTP answer."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.page = page_policy(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(DOCS_PATHS)
        policy = DOCS_POLICY if docs else self.page

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
            await send(message)

        await self.app(scope, receive, send_with_headers)
