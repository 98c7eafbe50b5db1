"""Caption export: `GET /api/upload-video/result/{job_id}?format=srt|vtt|json|txt|tsv|ass` (ext).

The same path as the ML server's webhook, but GET: a client reads what the webhook stored.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import CurrentUser, JobsDep
from app.api.errors import error_responses
from app.services.captions import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    CaptionFormat,
    CaptionOptions,
    render,
    with_speaker_names,
)
from app.services.errors import Conflict, JobNotFound
from app.services.job_service import parse_job_id
from ecg_protocol import AnalysisResult, JobStatus

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/upload-video", tags=["export"])

MEDIA_TYPES: dict[str, str] = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "ass": "text/x-ssa; charset=utf-8",
}
# The storage key's `{YYYYmmdd_HHMMSS}_{8 hex}_` prefix (app/services/storage.py make_file_key).
_KEY_PREFIX = re.compile(r"^\d{8}_\d{6}_[0-9a-f]{8}_")


def _download_name(result: AnalysisResult, job_id: str, fmt: str) -> str:
    stem = _KEY_PREFIX.sub("", (result.metadata.filename or "").rsplit("/", 1)[-1])
    stem = stem.rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or job_id
    return f"{stem}.{fmt}"


@router.get(
    "/result/{job_id}",
    summary="Export a completed job's result as SRT, WebVTT, JSON, TXT, TSV or ASS",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/x-subrip": {},
                "text/vtt": {},
                "application/json": {},
                "text/plain": {},
                "text/tab-separated-values": {},
                "text/x-ssa": {},
            }
        },
        **error_responses(401, 404, 409, 503),
    },
)
async def export_result(
    job_id: str,
    jobs: JobsDep,
    user: CurrentUser,
    format: Annotated[CaptionFormat, Query(description="srt, vtt, json, txt, tsv or ass")] = "json",
    max_line_length: Annotated[
        int, Query(ge=10, le=200, description="caption line length limit")
    ] = DEFAULT_MAX_LINE_LENGTH,
    max_line_count: Annotated[
        int, Query(ge=1, le=10, description="lines per caption")
    ] = DEFAULT_MAX_LINES,
    speaker_labels: Annotated[bool, Query(description="name the speaker on each caption")] = True,
    highlight_words: Annotated[
        bool, Query(description="karaoke: one caption per word said, that word marked")
    ] = False,
) -> Response:
    """The stored result in the asked format; captions carry speaker labels unless turned off."""
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
    opts = CaptionOptions(max_line_length, max_line_count, speaker_labels, highlight_words)
    if format != "json" and job.speaker_names:
        # Captions show the names users gave the speakers; JSON keeps the stable ids.
        result = with_speaker_names(result, job.speaker_names)
    body = render(result, format, opts)
    logger.info("export job_id=%s format=%s bytes=%d", job_id, format, len(body))
    name = _download_name(result, job_id, format)
    return Response(
        content=body.encode("utf-8"),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
