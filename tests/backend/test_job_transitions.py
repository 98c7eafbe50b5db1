"""The jobs table's state machine, tested once, on SQLite and on PostgreSQL: JobService's named
transitions (pending → processing → completed | failed, progress never down, a final job never
touched, the dispatch outbox's guarded moves), and JobService as the table's only writer."""

from __future__ import annotations

import ast
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.database import create_engine, create_session_factory, run_migrations
from app.models.job import Job
from app.services.job_service import ClaimedJob, JobService, Transition, utcnow
from ecg_protocol import ErrorCode, JobStatus

APP = Path(__file__).resolve().parents[2] / "app"
WRITER = APP / "services" / "job_service.py"
LEASE = timedelta(seconds=60)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(db_url)
    await run_migrations(engine)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _new_job(sessions: Sessions) -> uuid.UUID:
    job_id = uuid.uuid4()
    async with sessions() as s:
        await JobService(s).create_job(
            job_id=job_id,
            file_key=f"videos/t/20240101_000000_abcd1234_{job_id.hex[:8]}.mp4",
            video_url=None,
            owner=f"u{job_id.hex[:12]}",
        )
    return job_id


async def _row(sessions: Sessions, job_id: uuid.UUID) -> Job:
    async with sessions() as s:
        job = await JobService(s).get_job(job_id=job_id)
    assert job is not None
    return job


async def _move(sessions: Sessions, job_id: uuid.UUID, status: JobStatus, **kw: Any) -> bool:
    async with sessions() as s:
        return await JobService(s).update_job_status(job_id=job_id, status=status, **kw)


# ---------------------------------------------------------------------- forward-only moves


async def test_progress_only_goes_up_and_the_stage_follows_it(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    assert await _move(sessions, jid, JobStatus.PROCESSING, progress=40, stage="asr")
    # A late, older progress event: accepted (the job is open) but moves nothing back.
    assert await _move(sessions, jid, JobStatus.PROCESSING, progress=10, stage="decode")
    job = await _row(sessions, jid)
    assert (job.status, job.progress, job.stage) == ("processing", 40, "asr")
    assert job.last_event_at is not None
    assert await _move(sessions, jid, JobStatus.PROCESSING, progress=70, stage="diarize")
    job = await _row(sessions, jid)
    assert (job.progress, job.stage) == (70, "diarize")


async def test_a_completed_job_is_never_touched_again(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    assert await _move(sessions, jid, JobStatus.COMPLETED, result={"segments": []})
    assert not await _move(sessions, jid, JobStatus.PROCESSING, progress=99, stage="asr")
    assert not await _move(sessions, jid, JobStatus.FAILED, error_code="X", error_message="X: no")
    job = await _row(sessions, jid)
    assert (job.status, job.progress, job.stage) == ("completed", 100, "done")
    assert job.result == {"segments": []} and job.error_code is None


async def test_a_failed_job_is_never_touched_again(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    assert await _move(sessions, jid, JobStatus.PROCESSING, progress=30, stage="asr")
    assert await _move(sessions, jid, JobStatus.FAILED, error_code="E", error_message="E: boom")
    assert not await _move(sessions, jid, JobStatus.COMPLETED, result={"segments": []})
    job = await _row(sessions, jid)
    # The failure keeps the stage it failed in.
    assert (job.status, job.stage, job.error_code, job.result) == ("failed", "asr", "E", None)


async def test_nothing_moves_a_job_back_to_pending(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    assert await _move(sessions, jid, JobStatus.PROCESSING, progress=5)
    assert not await _move(sessions, jid, JobStatus.PENDING)
    assert (await _row(sessions, jid)).status == "processing"
    assert not await _move(sessions, uuid.uuid4(), JobStatus.PROCESSING, progress=5)


async def test_callbacks_apply_once_and_say_why_not(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    async with sessions() as s:
        first = await JobService(s).apply_callback(
            job_id=jid, msg_id="msg_1", status=JobStatus.PROCESSING, progress=10
        )
    async with sessions() as s:
        replay = await JobService(s).apply_callback(
            job_id=jid, msg_id="msg_1", status=JobStatus.PROCESSING, progress=50
        )
    assert first.outcome == Transition.APPLIED and first.created_at is not None
    assert first.created_at.tzinfo is not None
    assert replay.outcome == Transition.DUPLICATE
    assert (await _row(sessions, jid)).progress == 10
    async with sessions() as s:
        done = await JobService(s).apply_callback(
            job_id=jid, msg_id="msg_2", status=JobStatus.COMPLETED, progress=100, result={}
        )
    async with sessions() as s:
        late = await JobService(s).apply_callback(
            job_id=jid, msg_id="msg_3", status=JobStatus.FAILED, progress=0, error_code="E"
        )
    async with sessions() as s:
        unknown = await JobService(s).apply_callback(
            job_id=uuid.uuid4(), msg_id="msg_4", status=JobStatus.PROCESSING, progress=1
        )
    assert done.outcome == Transition.APPLIED
    assert late.outcome == Transition.ALREADY_COMPLETED
    assert unknown.outcome == Transition.NOT_FOUND
    # Not applied, so not remembered: msg_3 may still be applied later elsewhere (it cannot here).
    async with sessions() as s:
        again = await JobService(s).apply_callback(
            job_id=jid, msg_id="msg_3", status=JobStatus.FAILED, progress=0, error_code="E"
        )
    assert again.outcome == Transition.ALREADY_COMPLETED


# ---------------------------------------------------------------------- the dispatch outbox


async def _claim(sessions: Sessions, limit: int = 1000) -> dict[uuid.UUID, ClaimedJob]:
    async with sessions() as s:
        claimed = await JobService(s).claim_for_dispatch(lease=LEASE, limit=limit)
    return {c.job_id: c for c in claimed}


async def test_a_claim_leases_the_row_once(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    first = await _claim(sessions)
    assert jid in first
    assert jid not in await _claim(sessions), "claimed twice within its lease"
    job = await _row(sessions, jid)
    assert job.next_attempt_at is not None and job.dispatched_at is None
    async with sessions() as s:
        due = await JobService(s).next_dispatch_due(now=utcnow())
    assert due is not None and due.tzinfo is not None


async def test_dispatch_outcomes_are_guarded(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    claim = (await _claim(sessions))[jid]
    lease_until = claim.lease_until
    async with sessions() as s:
        jobs = JobService(s)
        # A retry from a claim that is no longer ours (another lease) changes nothing.
        assert not await jobs.schedule_retry(
            job_id=jid, lease_until=lease_until - LEASE, attempts=1, delay_s=0
        )
        assert await jobs.schedule_retry(job_id=jid, lease_until=lease_until, attempts=1, delay_s=0)
    assert (await _row(sessions, jid)).dispatch_attempts == 1
    assert jid in await _claim(sessions), "due again after the retry delay"
    async with sessions() as s:
        jobs = JobService(s)
        assert await jobs.mark_dispatched(job_id=jid)
        assert not await jobs.mark_dispatched(job_id=jid)
        # Accepted by the ML server: a late dispatch failure must not fail it.
        assert not await jobs.fail_dispatch(
            job_id=jid, code=ErrorCode.DISPATCH_REJECTED, message="x"
        )
    job = await _row(sessions, jid)
    assert job.status == "pending" and job.dispatched_at is not None
    assert job.next_attempt_at is None and job.last_event_at is not None


async def test_a_dispatch_failure_fails_the_job_with_its_code(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    async with sessions() as s:
        assert await JobService(s).fail_dispatch(
            job_id=jid, code=ErrorCode.DISPATCH_REJECTED, message="bad request", attempts=4
        )
    job = await _row(sessions, jid)
    assert (job.status, job.error_code) == ("failed", "DISPATCH_REJECTED")
    assert job.error_message == "DISPATCH_REJECTED: bad request"
    assert job.dispatch_attempts == 4 and job.next_attempt_at is None
    assert jid not in await _claim(sessions)


async def test_a_lost_job_is_requeued_once_per_count(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    async with sessions() as s:
        jobs = JobService(s)
        assert not await jobs.requeue_lost(job_id=jid, redispatch_count=0), "never dispatched"
        assert await jobs.mark_dispatched(job_id=jid)
        assert not await jobs.requeue_lost(job_id=jid, redispatch_count=1)
        assert await jobs.requeue_lost(job_id=jid, redispatch_count=0)
        assert not await jobs.requeue_lost(job_id=jid, redispatch_count=0), "two replicas"
    job = await _row(sessions, jid)
    assert job.dispatched_at is None and job.redispatch_count == 1
    assert jid in await _claim(sessions)


async def test_quiet_jobs_are_found_and_heard(sessions: Sessions) -> None:
    jid = await _new_job(sessions)
    async with sessions() as s:
        assert await JobService(s).mark_dispatched(job_id=jid)
    async with sessions() as s:
        quiet = await JobService(s).quiet_dispatched(
            unheard_since=utcnow() + timedelta(seconds=1), limit=10_000
        )
    [row] = [q for q in quiet if q.job_id == jid]
    assert row.redispatch_count == 0 and row.last_heard.tzinfo is not None
    async with sessions() as s:
        assert await JobService(s).mark_heard(job_id=jid)
    assert await _move(sessions, jid, JobStatus.COMPLETED, result={})
    async with sessions() as s:
        assert not await JobService(s).mark_heard(job_id=jid), "a final job is not touched"
        quiet = await JobService(s).quiet_dispatched(
            unheard_since=utcnow() + timedelta(seconds=1), limit=10_000
        )
    assert jid not in {q.job_id for q in quiet}


# ---------------------------------------------------------------------- one writer


TABLES = {"Job", "WebhookEvent"}


def _writes_in(path: Path) -> list[str]:
    """The statements in `path` that write the jobs (or webhook-id) table."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        first = node.args[0] if node.args else None
        target = first.id if isinstance(first, ast.Name) else None
        if (
            (name in ("update", "insert", "delete") and target in TABLES)
            or name in TABLES  # a new row object (an ORM insert)
            or (name in ("add", "add_all", "merge") and "session" in ast.unparse(func))
        ):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_jobs_table_has_one_writer() -> None:
    outside = [w for p in sorted(APP.rglob("*.py")) if p != WRITER for w in _writes_in(p)]
    assert outside == [], "write the jobs table through JobService's transitions"
    assert len(_writes_in(WRITER)) >= 5


def test_the_writer_check_sees_each_kind_of_write(tmp_path: Path) -> None:
    writes = [
        "update(Job).where(Job.job_id == j).values(progress=1)",
        "sa.insert(Job).values(job_id=j)",
        "delete(WebhookEvent)",
        "session.add(Job(job_id=j))",
        "self.session.add(row)",
    ]
    module = tmp_path / "m.py"
    module.write_text("\n".join(writes) + "\nselect(Job)\nsettings.add(1)\n")
    assert len({w.split(":")[1] for w in _writes_in(module)}) == len(writes)
