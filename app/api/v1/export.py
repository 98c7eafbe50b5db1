"""Caption export: `GET /api/upload-video/result/{job_id}?format=srt|vtt|json` (ext).

The same path as the ML server's webhook, but GET: a client reads what the webhook stored.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import CurrentUser, JobsDep
from app.api.errors import error_responses
from app.services.captions import DEFAULT_MAX_LINE_LENGTH, CaptionFormat, render
from app.services.errors import Conflict, JobNotFound
from app.services.job_service import parse_job_id
from ecg_protocol import AnalysisResult, JobStatus

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/upload-video", tags=["export"])

MEDIA_TYPES: dict[str, str] = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def _download_name(result: AnalysisResult, job_id: str, fmt: str) -> str:
    stem = (result.metadata.filename or "").rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or job_id
    return f"{stem}.{fmt}"


@router.get(
    "/result/{job_id}",
    summary="Export a completed job's result as SRT, WebVTT or JSON",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/x-subrip": {},
                "text/vtt": {},
                "application/json": {},
            }
        },
        **error_responses(401, 404, 409, 503),
    },
)
async def export_result(
    job_id: str,
    jobs: JobsDep,
    user: CurrentUser,
    format: Annotated[CaptionFormat, Query(description="srt, vtt or json")] = "json",
    max_line_length: Annotated[
        int, Query(ge=10, le=200, description="caption line length limit")
    ] = DEFAULT_MAX_LINE_LENGTH,
) -> Response:
    """The stored result in the asked format; captions carry speaker labels."""
    jid = parse_job_id(job_id)
    job = await jobs.get_job(job_id=jid, owner=user) if jid else None
    if job is None:
        raise JobNotFound(f"job {job_id} not found")
    if job.status != JobStatus.COMPLETED.value or job.result is None:
        raise Conflict(
            f"job {job_id} is {job.status}; captions exist once it has completed",
            status=job.status,
        )
    result = AnalysisResult.model_validate(job.result)
    body = render(result, format, max_line_length=max_line_length)
    logger.info("export job_id=%s format=%s bytes=%d", job_id, format, len(body))
    name = _download_name(result, job_id, format)
    return Response(
        content=body.encode("utf-8"),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
