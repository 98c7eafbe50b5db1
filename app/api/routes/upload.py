"""`POST /api/upload-video/generate-url` (the guide's step 1, docs/guide.md): an upload URL and
the key to process;
`GET /api/upload-video/capacity` (ext): may this client start a job now (before it uploads)?"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from app.api.deps import ContextDep, CurrentUser, SettingsDep, StorageDep, client_ip
from app.api.errors import error_responses
from app.services.storage import make_file_key
from app.services.uploads import normalize_content_type
from ecg_protocol.public import CapacityResponse, GenerateUrlResponse

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/upload-video", tags=["upload"], responses=error_responses(400, 401, 415)
)


class GenerateUrlRequest(BaseModel):
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(min_length=1, max_length=255)


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


@router.get("/capacity")
async def capacity(request: Request, response: Response, ctx: ContextDep) -> CapacityResponse:
    """How many request-process calls this client has left in the window (none is counted)."""
    cap = await ctx.process_limiter.capacity(client_ip(request, ctx.settings))
    if cap is None:
        return CapacityResponse(limited=False)
    if cap.retry_after_s:
        response.headers["Retry-After"] = str(cap.retry_after_s)
    return CapacityResponse(
        limited=True,
        limit=cap.limit,
        remaining=cap.remaining,
        window_s=cap.window_s,
        retry_after_s=cap.retry_after_s,
    )
