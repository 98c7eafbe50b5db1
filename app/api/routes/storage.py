"""Routes of the embedded local storage: signed PUT (upload) and GET (download).

Only active when the backend runs on local storage; with S3 these paths answer 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import ContextDep
from app.api.errors import error_responses
from app.services.errors import FileNotFound, NotFound, UnsupportedContentType
from app.services.local_storage import LocalStorage

router = APIRouter(
    prefix="/storage", tags=["storage"], responses=error_responses(400, 403, 404, 413, 415)
)


def _local(ctx: ContextDep) -> LocalStorage:
    if not isinstance(ctx.storage, LocalStorage):
        raise NotFound("local storage is not in use")
    return ctx.storage


@router.put("/{file_key:path}")
async def upload_object(
    file_key: str,
    request: Request,
    ctx: ContextDep,
    expires: Annotated[str | None, Query()] = None,
    sig: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """Store the body streamed, verified against the URL's signature and the size limit."""
    storage = _local(ctx)
    content_type = request.headers.get("content-type", "").strip().lower()
    storage.verify(
        method="PUT", file_key=file_key, expires=expires, sig=sig, content_type=content_type
    )
    if content_type not in ctx.settings.content_types:
        raise UnsupportedContentType(f"content type {content_type!r} is not accepted")
    size = await storage.write_stream(file_key, content_type, request.stream())
    return JSONResponse({"file_key": file_key, "size": size})


@router.get("/{file_key:path}")
async def download_object(
    file_key: str,
    ctx: ContextDep,
    expires: Annotated[str | None, Query()] = None,
    sig: Annotated[str | None, Query()] = None,
) -> FileResponse:
    """Serve the object to whoever holds a valid, unexpired download URL."""
    storage = _local(ctx)
    storage.verify(method="GET", file_key=file_key, expires=expires, sig=sig, content_type="")
    info = await storage.head_object(file_key)
    if info is None:
        raise FileNotFound(f"file {file_key!r} not found")
    return FileResponse(
        storage.path_for(file_key), media_type=info.content_type or "application/octet-stream"
    )
