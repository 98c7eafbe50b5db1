"""`POST /api/upload-video/generate-url` (guide §1): an upload URL and the key to process."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import CurrentUser, SettingsDep, StorageDep
from app.api.errors import error_responses
from app.services.storage import make_file_key
from app.services.uploads import normalize_content_type

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/upload-video", tags=["upload"], responses=error_responses(400, 401, 415)
)


class GenerateUrlRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(min_length=1, max_length=255)


class GenerateUrlResponse(BaseModel):
    presigned_url: str
    file_key: str
    expires_in: int
    url: str  # legacy duplicate of presigned_url
    fileKey: str  # legacy duplicate of file_key


@router.post("/generate-url")
async def generate_presigned_url(
    body: GenerateUrlRequest, user: CurrentUser, storage: StorageDep, settings: SettingsDep
) -> GenerateUrlResponse:
    """Issue a time-limited PUT URL bound to the content type, under the caller's prefix."""
    content_type = normalize_content_type(body.content_type, settings)
    key = make_file_key(user, body.filename)
    url = storage.generate_presigned_url(key, content_type, settings.s3_presigned_url_expire)
    logger.info("upload URL issued: key=%s owner=%s", key, user)
    return GenerateUrlResponse(
        presigned_url=url,
        file_key=key,
        expires_in=settings.s3_presigned_url_expire,
        url=url,
        fileKey=key,
    )
