"""A job's speaker names and media for the web page (ext): rename speakers, replay a permalink.

`GET|PUT /api/jobs/{job_id}/speakers` reads and sets the names shown for `SPEAKER_00` …, kept
with the job (captions exported afterwards use them); `GET /api/jobs/{job_id}/media` redirects
to a fresh, time-limited download URL of the uploaded video, and `GET /api/jobs/{job_id}/media-url`
answers that URL as JSON: a `<video>` cannot send a token, so a page that must sign in fetches
the short-lived signed URL with its token and plays that.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.api.deps import ContextDep, CurrentUser, JobsDep
from app.api.errors import error_responses
from app.models.job import Job
from app.services.errors import Conflict, InvalidInput, JobNotFound
from app.services.job_service import parse_job_id
from ecg_protocol import JobStatus

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=error_responses(401, 404, 503))

# Control characters include NEL (U+0085); with LINE and PARAGRAPH SEPARATOR (U+2028/9) they
# break a caption line, so a name holding one could inject a cue into an exported file.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(name: str) -> str:
    if _NOT_ONE_LINE.search(name):
        raise ValueError(
            "a speaker name must be one line: no control characters, line or paragraph separators"
        )
    return name


SpeakerName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64), AfterValidator(_one_line)
]


class SpeakerNames(BaseModel):
    names: dict[str, SpeakerName] = Field(
        description='{"SPEAKER_00": "Alice"}; an empty name clears it', max_length=64
    )


class SpeakersAnswer(BaseModel):
    job_id: str
    speakers: list[str]  # the speaker ids in the result, in order of appearance
    names: dict[str, str]


async def _own_job(jobs: JobsDep, job_id: str, user: str) -> Job:
    jid = parse_job_id(job_id)
    job = await jobs.get_job(job_id=jid, owner=user) if jid else None
    if job is None:
        raise JobNotFound(f"job {job_id} not found")
    return job


def _speakers(job: Job) -> list[str]:
    segments = (job.result or {}).get("segments") or []
    return list(dict.fromkeys(s["speaker"]["speaker_id"] for s in segments))


@router.get("/{job_id}/speakers")
async def get_speakers(job_id: str, user: CurrentUser, jobs: JobsDep) -> SpeakersAnswer:
    """The job's speakers and the names given to them."""
    job = await _own_job(jobs, job_id, user)
    return SpeakersAnswer(job_id=job_id, speakers=_speakers(job), names=job.speaker_names or {})


@router.put("/{job_id}/speakers", responses=error_responses(400, 409))
async def set_speakers(
    job_id: str, body: SpeakerNames, user: CurrentUser, jobs: JobsDep
) -> SpeakersAnswer:
    """Name the completed job's speakers; names merge with earlier ones."""
    job = await _own_job(jobs, job_id, user)
    if job.status != JobStatus.COMPLETED.value:
        raise Conflict(f"job {job_id} is {job.status}; speakers exist once it has completed")
    speakers = _speakers(job)
    unknown = sorted(set(body.names) - set(speakers))
    if unknown:
        raise InvalidInput(f"no such speaker in this job: {', '.join(unknown)}", speakers=speakers)
    names = await jobs.set_speaker_names(job_id=job.job_id, owner=user, names=body.names)
    logger.info("speaker names set job_id=%s count=%d", job_id, len(names or {}))
    return SpeakersAnswer(job_id=job_id, speakers=speakers, names=names or {})


# Long enough to start playing (a browser re-requests ranges with the same URL), short enough
# that a copied URL soon stops working.
MEDIA_URL_EXPIRES_S = 600


class MediaUrl(BaseModel):
    url: str
    expires_in: int


async def _media_url(jobs: JobsDep, job_id: str, user: str, ctx: ContextDep) -> str:
    job = await _own_job(jobs, job_id, user)
    if not job.file_key or await ctx.storage.head_object(job.file_key) is None:
        raise JobNotFound(f"the video of job {job_id} is no longer stored")
    return ctx.storage.generate_download_url(job.file_key, MEDIA_URL_EXPIRES_S)


@router.get("/{job_id}/media", response_class=RedirectResponse, status_code=307)
async def get_media(job_id: str, user: CurrentUser, jobs: JobsDep, ctx: ContextDep) -> str:
    """Redirect to a fresh download URL of the job's uploaded video."""
    return await _media_url(jobs, job_id, user, ctx)


@router.get("/{job_id}/media-url")
async def get_media_url(job_id: str, user: CurrentUser, jobs: JobsDep, ctx: ContextDep) -> MediaUrl:
    """A short-lived signed URL of the job's uploaded video, playable without a token."""
    url = await _media_url(jobs, job_id, user, ctx)
    return MediaUrl(url=url, expires_in=MEDIA_URL_EXPIRES_S)
