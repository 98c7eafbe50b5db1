"""`GET /api/upload-video/status/{job_id}`: the job status every client polls.

The one route that bypasses dependency injection on purpose: it is the measured fast path
(docs/benchmarks.md, status), and solving even cheap dependencies costs more than the cached
answer. It resolves the same context and runs the same `authenticate` as `ContextDep` and
`CurrentUser`, and the auth tests exercise it like the injected routes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel

from app.api.deps import AppContext
from app.api.errors import error_responses
from app.services.auth import authenticate
from app.services.errors import JobNotFound
from app.services.job_service import parse_job_id
from ecg_protocol import Stage

router = APIRouter(prefix="/api/upload-video", tags=["ml"], responses=error_responses(401, 503))


@router.get(
    "/status/{job_id}",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **error_responses(404)},
)
async def get_job_status(
    job_id: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The guide's status shape (docs/guide.md) plus stage, error, timestamps (pre-serialized)."""
    # The hot path every client polls: no dependency graph to solve (each FastAPI dependency
    # costs more than the cached answer), the same context and auth as CurrentUser/ContextDep.
    ctx: AppContext = request.app.state.ctx
    user = authenticate(authorization, ctx.settings)
    jid = parse_job_id(job_id)
    body = await ctx.status.read(jid, user) if jid is not None else None
    if body is None:
        raise JobNotFound(f"job {job_id} not found")
    return Response(content=body, media_type="application/json")


class StageList(BaseModel):
    stages: list[str]


@router.get("/stages")
async def list_stages() -> StageList:
    """The pipeline's stages in the order they run; a job's `stage` names one of them (the
    page draws its progress chips from this list)."""
    return StageList(stages=[s.value for s in Stage if s is not Stage.DONE])
