"""Job list and delete (the guide's `list_all_jobs` / `delete_job`, docs/guide.md), owner-scoped.

Anonymous means unlisted: every anonymous caller shares the owner `anonymous`, so listing
would hand each of them everyone's job ids; an anonymous caller reaches a job only by the
unguessable id it was given, and `GET /api/jobs` lists nothing for it. Deleting a job deletes
its stored video too, so the upload cannot be processed again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import ContextDep, CurrentUser, JobsDep
from app.api.errors import error_responses
from app.services.auth import ANONYMOUS
from app.services.errors import JobNotFound
from app.services.job_service import OPEN, as_utc, parse_job_id
from app.services.ml_client import MLClient, MLRequestError

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=error_responses(401, 404, 503))
_background: set[asyncio.Task[None]] = set()


class JobSummary(BaseModel):
    job_id: str
    status: str
    progress: int
    stage: str | None
    file_key: str | None
    language: str
    error_code: str | None
    error_message: str | None
    created_at: datetime | None
    updated_at: datetime | None


class JobList(BaseModel):
    jobs: list[JobSummary]
    count: int


class JobDeleted(BaseModel):
    job_id: str
    deleted: bool = True


@router.get("")
async def list_jobs(
    user: CurrentUser,
    jobs: JobsDep,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> JobList:
    """The caller's jobs, newest first (results are fetched per job via status).

    Anonymous callers are unlisted: the answer is empty for them (see the module docstring).
    """
    if user == ANONYMOUS:
        return JobList(jobs=[], count=0)
    rows = await jobs.list_all_jobs(owner=user, limit=limit, offset=offset)
    items = [
        JobSummary(
            job_id=str(j.job_id),
            status=j.status,
            progress=j.progress,
            stage=j.stage,
            file_key=j.file_key,
            language=j.language,
            error_code=j.error_code,
            error_message=j.error_message,
            created_at=as_utc(j.created_at),
            updated_at=as_utc(j.updated_at),
        )
        for j in rows
    ]
    return JobList(jobs=items, count=len(items))


async def _cancel_on_ml_server(ml: MLClient, job_id: str) -> None:
    # Best effort: the ML server stops work on a job nobody will read (signed, like every call).
    try:
        accepted = await ml.cancel(job_id)
    except MLRequestError as exc:
        logger.info("cancel on the ML server failed: job_id=%s %s", job_id, exc)
        return
    if accepted is not None:
        logger.info("cancel sent: job_id=%s ML status=%s", job_id, accepted.status.value)


@router.delete("/{job_id}")
async def delete_job(job_id: str, user: CurrentUser, jobs: JobsDep, ctx: ContextDep) -> JobDeleted:
    """Delete the caller's job and its stored video (another user's job is a 404)."""
    jid = parse_job_id(job_id)
    job = await jobs.get_job(job_id=jid, owner=user) if jid is not None else None
    if jid is None or job is None:
        raise JobNotFound(f"job {job_id} not found")
    was_open = job.status in OPEN
    file_key = job.file_key
    if file_key:
        # The video first: storage down is a 503 with the job intact, and the client retries;
        # the other order could leave a video no job points to.
        await ctx.storage.delete_object(file_key)
        logger.info("video deleted: job_id=%s key=%s", jid, file_key)
    if not await jobs.delete_job(job_id=jid, owner=user):
        raise JobNotFound(f"job {job_id} not found")
    ctx.status.cache.invalidate(jid)
    logger.info("job deleted: job_id=%s owner=%s", jid, user)
    ml = ctx.dispatcher.ml_client
    if was_open and ml is not None:
        task = asyncio.create_task(_cancel_on_ml_server(ml, str(jid)))
        _background.add(task)
        task.add_done_callback(_background.discard)
    return JobDeleted(job_id=str(jid))
