"""Upload-side rules: which content types are accepted, and whether a stored key may be
processed by this caller."""

from __future__ import annotations

import logging

from app.core.config import Settings
from app.services.errors import FileNotFound, FileTooLarge, InvalidInput, UnsupportedContentType
from app.services.storage import ObjectInfo, Storage, is_safe_key, user_prefix

logger = logging.getLogger(__name__)


def normalize_content_type(content_type: str, settings: Settings) -> str:
    """The accepted content type, lower-cased; `UnsupportedContentType` for anything else."""
    value = content_type.strip().lower()
    if value not in settings.content_types:
        raise UnsupportedContentType(
            f"content type {content_type!r} is not accepted; use a video or audio type",
            allowed=sorted(settings.content_types),
        )
    return value


def check_upload_size(size: int, settings: Settings) -> None:
    """An upload's size rule, the same for request-process and the one-call API: over
    MAX_UPLOAD_BYTES is 413, empty is 400."""
    if size > settings.max_upload_bytes:
        raise FileTooLarge(
            f"file is {size} bytes, over the limit of {settings.max_upload_bytes} bytes",
            size=size,
            max_bytes=settings.max_upload_bytes,
        )
    if size == 0:
        raise InvalidInput("the uploaded file is empty")


async def check_uploaded_object(
    *, storage: Storage, settings: Settings, owner: str, file_key: str
) -> ObjectInfo:
    """The object behind `file_key`, if this caller may process it (else a clear 4xx)."""
    if not file_key.strip():
        raise InvalidInput("fileKey is required")
    if not is_safe_key(file_key):
        raise InvalidInput("fileKey is not a valid key; use the file_key from generate-url")
    # Someone else's key is reported exactly like a missing one: existence is not leaked.
    if not file_key.startswith(user_prefix(owner)):
        raise FileNotFound(f"file {file_key!r} not found")
    info = await storage.head_object(file_key)
    if info is None:
        raise FileNotFound(
            f"file {file_key!r} not found: upload it with PUT to the presigned_url first"
        )
    check_upload_size(info.size, settings)
    if info.content_type is not None and info.content_type.lower() not in settings.content_types:
        raise UnsupportedContentType(f"stored object has content type {info.content_type!r}")
    return info
