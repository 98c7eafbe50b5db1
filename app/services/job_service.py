"""JobService: the guide's job methods (docs/guide.md) on SQLAlchemy 2 (async), owner-scoped, and
the one writer of the jobs table (tests/backend/test_job_transitions.py keeps it so).

Every state change is guarded in SQL, so duplicates and races are harmless: status only moves
forward (pending → processing → completed | failed), progress never goes down, and a final
job is never touched again. Routes, the callback, the dispatcher and the reconciler all write
through the named transitions below; they keep only the decisions of when to call which.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, overload

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models.job import Job, WebhookEvent
from ecg_protocol import ErrorCode, JobStatus

OPEN = (JobStatus.PENDING.value, JobStatus.PROCESSING.value)
FINAL = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class NotifyState(StrEnum):
    """Where a job's client webhook stands (None: the caller asked for none)."""

    PENDING = "pending"  # not yet delivered; due once the job is final
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed


class Transition(StrEnum):
    """What a callback did to its job."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # same webhook-id seen before
    ALREADY_COMPLETED = "already_completed"
    ALREADY_FAILED = "already_failed"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class TransitionResult:
    outcome: Transition
    created_at: datetime | None = None


def parse_job_id(raw: str) -> uuid.UUID | None:
    """A job id from a path or body, None when it is not a UUID (so: unknown)."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """The columns a send needs, read in the claiming transaction."""

    job_id: uuid.UUID
    video_url: str | None
    file_key: str | None
    language: str
    options: dict[str, Any] | None
    dispatch_attempts: int
    redispatch_count: int
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class QuietJob:
    """A dispatched job the ML server has not been heard about lately (the reconciler's work)."""

    job_id: uuid.UUID
    redispatch_count: int
    file_key: str | None
    last_heard: datetime  # the last event, else the dispatch (UTC)


def due_for_dispatch(now: datetime) -> ColumnElement[bool]:
    """Rows the dispatcher may claim: open, not yet accepted by the ML server, lease expired."""
    return and_(
        Job.status.in_(OPEN),
        Job.dispatched_at.is_(None),
        or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now),
    )


_CLAIM_COLUMNS = (
    Job.job_id,
    Job.video_url,
    Job.file_key,
    Job.language,
    Job.options,
    Job.dispatch_attempts,
    Job.redispatch_count,
)


def _due_rows(now: datetime, limit: int) -> Select[Any]:
    """The oldest `limit` claimable jobs' dispatch columns (both claim strategies read this)."""
    return (
        select(*_CLAIM_COLUMNS).where(due_for_dispatch(now)).order_by(Job.created_at).limit(limit)
    )


def _claimed(row: Row[Any], lease_until: datetime) -> ClaimedJob:
    return ClaimedJob(
        job_id=row.job_id,
        video_url=row.video_url,
        file_key=row.file_key,
        language=row.language or "auto",
        options=row.options,
        dispatch_attempts=row.dispatch_attempts or 0,
        redispatch_count=row.redispatch_count or 0,
        lease_until=lease_until,
    )


T = TypeVar("T")


async def with_jobs(
    sessions: async_sessionmaker[AsyncSession], op: Callable[[JobService], Awaitable[T]]
) -> T:
    """Run one JobService operation in a session of its own (the background loops' unit)."""
    async with sessions() as session:
        return await op(JobService(session))


class JobService:
    """Jobs for one session; callers commit through the service methods."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_job(
        self,
        *,
        job_id: uuid.UUID,
        file_key: str,
        video_url: str | None,
        owner: str,
        language: str = "auto",
        options: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        status: JobStatus = JobStatus.PENDING,
        progress: int = 0,
        webhook_url: str | None = None,
    ) -> Job:
        """Insert and commit a job row; `IntegrityError` if the idempotency key is taken."""
        job = Job(
            job_id=job_id,
            owner=owner,
            status=status.value,
            progress=progress,
            file_key=file_key,
            video_url=video_url,
            language=language,
            options=options,
            idempotency_key=idempotency_key,
            dispatch_attempts=0,
            redispatch_count=0,
            webhook_url=webhook_url,
            notify_state=NotifyState.PENDING.value if webhook_url else None,
            notify_attempts=0,
        )
        self.session.add(job)
        try:
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            raise
        return job

    async def get_job(self, *, job_id: uuid.UUID, owner: str | None = None) -> Job | None:
        """The job, or None when missing or owned by someone else."""
        stmt = select(Job).where(Job.job_id == job_id)
        if owner is not None:
            stmt = stmt.where(Job.owner == owner)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_idempotency_key(self, *, owner: str, key: str) -> Job | None:
        stmt = select(Job).where(Job.owner == owner, Job.idempotency_key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_all_jobs(self, *, owner: str, limit: int = 100, offset: int = 0) -> list[Job]:
        """The owner's jobs, newest first, without the (large) results."""
        stmt = (
            select(Job)
            .where(Job.owner == owner)
            .order_by(Job.created_at.desc(), Job.job_id)
            .limit(limit)
            .offset(offset)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def delete_job(self, *, job_id: uuid.UUID, owner: str) -> bool:
        """Delete the owner's job; False when there is none."""
        res = await self.session.execute(
            delete(Job).where(Job.job_id == job_id, Job.owner == owner)
        )
        await self.session.execute(delete(WebhookEvent).where(WebhookEvent.job_id == job_id))
        await self.session.commit()
        return _changed(res)

    async def set_speaker_names(
        self, *, job_id: uuid.UUID, owner: str, names: dict[str, str]
    ) -> dict[str, str] | None:
        """Store the owner's names for the job's speakers (merged, empty name = cleared);
        the names now in force, or None when the job is not the owner's."""
        job = await self.get_job(job_id=job_id, owner=owner)
        if job is None:
            return None
        merged = {**(job.speaker_names or {}), **names}
        kept = {k: v for k, v in merged.items() if v}
        await self.session.execute(
            update(Job).where(Job.job_id == job_id).values(speaker_names=kept or None)
        )
        await self.session.commit()
        return kept

    async def claim_notifications(
        self, *, now: datetime, lease_s: float, limit: int = 20
    ) -> list[Job]:
        """Final jobs whose client webhook is due, each claimed for `lease_s`.

        The claim is a compare-and-set on `notify_attempts`, so of several replicas exactly one
        sends each attempt; a sender that dies leaves the lease to run out and be claimed again.
        """
        due = (
            select(Job.job_id, Job.notify_attempts)
            .where(
                Job.notify_state == NotifyState.PENDING.value,
                Job.status.in_(FINAL),
                or_(Job.notify_next_at.is_(None), Job.notify_next_at <= now),
            )
            .limit(limit)
        )
        claimed: list[uuid.UUID] = []
        for job_id, attempts in (await self.session.execute(due)).all():
            res = await self.session.execute(
                update(Job)
                .where(Job.job_id == job_id, Job.notify_attempts == attempts)
                .values(
                    notify_attempts=attempts + 1, notify_next_at=now + timedelta(seconds=lease_s)
                )
            )
            if _changed(res):
                claimed.append(job_id)
        await self.session.commit()
        if not claimed:
            return []
        return list(
            (await self.session.execute(select(Job).where(Job.job_id.in_(claimed)))).scalars()
        )

    async def finish_notification(
        self, *, job_id: uuid.UUID, state: NotifyState, retry_at: datetime | None = None
    ) -> None:
        """Record an attempt's outcome: delivered, failed for good, or (pending) due again."""
        await self.session.execute(
            update(Job)
            .where(Job.job_id == job_id, Job.notify_state == NotifyState.PENDING.value)
            .values(notify_state=state.value, notify_next_at=retry_at)
        )
        await self.session.commit()

    async def update_job_status(
        self,
        *,
        job_id: uuid.UUID,
        status: JobStatus,
        progress: int | None = None,
        stage: str | None = None,
        result: dict[str, Any] | None = None,
        result_json: str | None = None,
        error_message: str | None = None,
        error_code: str | None = None,
        commit: bool = True,
    ) -> bool:
        """Move an open job forward on news from the ML server (guarded in SQL); False when it
        was final or missing.

        `result_json` is the result already serialized (the webhook's fast path); it is stored
        as is instead of being re-serialized from `result`.
        """
        values = self._moves(
            status,
            progress=progress,
            stage=stage,
            result=self._json_text(result_json) if result_json is not None else result,
            error_code=error_code,
            error_message=error_message,
        )
        if values is None:
            return False  # nothing moves a job back to pending
        now = utcnow()
        values.update(last_event_at=now, updated_at=now)
        return await self._advance(job_id, values, commit=commit)

    def _moves(
        self,
        status: JobStatus,
        *,
        progress: int | None = None,
        stage: str | None = None,
        result: dict[str, Any] | ColumnElement[Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> dict[str, Any] | None:
        """The state machine, written once: the columns a move to `status` sets, None for a
        move that does not exist (back to pending). `_advance` applies them to open jobs only."""
        if status == JobStatus.PROCESSING:
            p = progress if progress is not None else 0
            # Progress never goes down; the stage follows the progress it came with.
            values: dict[str, Any] = {
                "status": JobStatus.PROCESSING.value,
                "progress": case((Job.progress < p, p), else_=Job.progress),
            }
            if stage is not None:
                values["stage"] = case((Job.progress <= p, stage), else_=Job.stage)
            return values
        if status == JobStatus.COMPLETED:
            return {
                "status": JobStatus.COMPLETED.value,
                "progress": 100,
                "stage": stage or "done",
                "result": result,
                "error_code": None,
                "error_message": None,
            }
        if status == JobStatus.FAILED:
            return {
                "status": JobStatus.FAILED.value,
                "stage": stage if stage is not None else Job.stage,
                "error_code": error_code,
                "error_message": error_message,
            }
        return None

    async def _advance(
        self,
        job_id: uuid.UUID,
        values: dict[str, Any],
        *,
        where: Sequence[ColumnElement[bool]] = (),
        commit: bool = True,
    ) -> bool:
        """Write `values` to the job if it is still open (and matches `where`); True if it did."""
        res = await self.session.execute(
            update(Job)
            .where(Job.job_id == job_id, Job.status.in_(OPEN), *where)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if commit:
            await self.session.commit()
        return _changed(res)

    def _json_text(self, text: str) -> ColumnElement[Any]:
        # PostgreSQL parses the text into JSONB; SQLite keeps JSON as text already. Either way
        # a 3 MB result skips a Python json.dumps round.
        if self.session.get_bind().dialect.name == "postgresql":
            return cast(literal(text, Text), JSONB)
        return type_coerce(literal(text, Text), Text)

    async def webhook_seen(self, *, msg_id: str) -> bool:
        """Whether a callback with this webhook-id was applied already."""
        found = await self.session.execute(
            select(WebhookEvent.msg_id).where(WebhookEvent.msg_id == msg_id)
        )
        return found.first() is not None

    async def apply_callback(
        self,
        *,
        job_id: uuid.UUID,
        msg_id: str | None,
        status: JobStatus,
        progress: int,
        stage: str | None = None,
        result: dict[str, Any] | None = None,
        result_json: str | None = None,
        error_message: str | None = None,
        error_code: str | None = None,
    ) -> TransitionResult:
        """Record the webhook-id and apply the callback in one transaction."""
        if msg_id is not None:
            self.session.add(WebhookEvent(msg_id=msg_id, job_id=job_id))
            try:
                await self.session.flush()
            except IntegrityError:
                await self.session.rollback()
                return TransitionResult(Transition.DUPLICATE)
        changed = await self.update_job_status(
            job_id=job_id,
            status=status,
            progress=progress,
            stage=stage,
            result=result,
            result_json=result_json,
            error_message=error_message,
            error_code=error_code,
            commit=False,
        )
        if changed:
            created = (
                await self.session.execute(select(Job.created_at).where(Job.job_id == job_id))
            ).scalar_one_or_none()
            await self.session.commit()
            return TransitionResult(Transition.APPLIED, as_utc(created))
        # Nothing changed: say why, and keep no trace of the webhook-id (nothing was applied).
        await self.session.rollback()
        current = (
            await self.session.execute(select(Job.status).where(Job.job_id == job_id))
        ).scalar_one_or_none()
        if current is None:
            return TransitionResult(Transition.NOT_FOUND)
        if current == JobStatus.COMPLETED.value:
            return TransitionResult(Transition.ALREADY_COMPLETED)
        return TransitionResult(Transition.ALREADY_FAILED)

    # ------------------------------------------------------------------ the dispatch outbox

    async def claim_for_dispatch(self, *, lease: timedelta, limit: int) -> list[ClaimedJob]:
        """Lease up to `limit` due rows to the caller (`next_attempt_at` = now + lease).

        PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas sharing it take disjoint
        rows; SQLite (embedded, one process) with a compare-and-swap per row.
        """
        now = utcnow()
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._claim_skip_locked(now, now + lease, limit)
        return await self._claim_cas(now, now + lease, limit)

    async def _claim_skip_locked(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedJob]:
        rows = (
            await self.session.execute(_due_rows(now, limit).with_for_update(skip_locked=True))
        ).all()
        if rows:
            await self.session.execute(
                update(Job)
                .where(Job.job_id.in_([r.job_id for r in rows]))
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
        await self.session.commit()
        return [_claimed(r, lease_until) for r in rows]

    async def _claim_cas(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedJob]:
        rows = (await self.session.execute(_due_rows(now, limit))).all()
        await self.session.rollback()
        claimed: list[ClaimedJob] = []
        for row in rows:
            res = await self.session.execute(
                update(Job)
                .where(Job.job_id == row.job_id, due_for_dispatch(now))
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            await self.session.commit()
            if _changed(res):
                claimed.append(_claimed(row, lease_until))
        return claimed

    async def next_dispatch_due(self, *, now: datetime) -> datetime | None:
        """When the earliest future retry or lease of an undispatched open job runs out."""
        due = (
            await self.session.execute(
                select(func.min(Job.next_attempt_at)).where(
                    Job.status.in_(OPEN),
                    Job.dispatched_at.is_(None),
                    Job.next_attempt_at > now,
                )
            )
        ).scalar_one_or_none()
        return as_utc(due)

    async def mark_dispatched(self, *, job_id: uuid.UUID) -> bool:
        """The ML server accepted the job: the outbox is done with it until it goes quiet."""
        now = utcnow()
        return await self._advance(
            job_id,
            {"dispatched_at": now, "last_event_at": now, "next_attempt_at": None},
            where=(Job.dispatched_at.is_(None),),
        )

    async def schedule_retry(
        self, *, job_id: uuid.UUID, lease_until: datetime, attempts: int, delay_s: float
    ) -> bool:
        """Send again in `delay_s`, if the row is still the caller's claim (its lease)."""
        return await self._advance(
            job_id,
            {
                "dispatch_attempts": attempts,
                "next_attempt_at": utcnow() + timedelta(seconds=delay_s),
            },
            where=(Job.dispatched_at.is_(None), Job.next_attempt_at == lease_until),
        )

    async def fail_dispatch(
        self, *, job_id: uuid.UUID, code: ErrorCode, message: str, attempts: int | None = None
    ) -> bool:
        """Fail a job the ML server never accepted (rejected, invalid, or out of retries)."""
        values = self._moves(
            JobStatus.FAILED, error_code=code.value, error_message=f"{code.value}: {message}"
        )
        assert values is not None  # FAILED is a move
        values["next_attempt_at"] = None
        if attempts is not None:
            values["dispatch_attempts"] = attempts
        return await self._advance(job_id, values, where=(Job.dispatched_at.is_(None),))

    # ------------------------------------------------------------------ reconciliation

    async def quiet_dispatched(self, *, unheard_since: datetime, limit: int) -> list[QuietJob]:
        """Dispatched open jobs with no news since `unheard_since`, longest silent first."""
        last_heard = func.coalesce(Job.last_event_at, Job.dispatched_at)
        rows = (
            await self.session.execute(
                select(Job.job_id, Job.redispatch_count, Job.file_key, last_heard.label("heard"))
                .where(
                    Job.status.in_(OPEN),
                    Job.dispatched_at.is_not(None),
                    or_(
                        Job.last_event_at < unheard_since,
                        and_(Job.last_event_at.is_(None), Job.dispatched_at < unheard_since),
                    ),
                )
                .order_by(last_heard)
                .limit(limit)
            )
        ).all()
        return [
            QuietJob(
                job_id=r.job_id,
                redispatch_count=r.redispatch_count or 0,
                file_key=r.file_key,
                last_heard=as_utc(r.heard),
            )
            for r in rows
        ]

    async def requeue_lost(self, *, job_id: uuid.UUID, redispatch_count: int) -> bool:
        """Back to the outbox after the ML server lost the job; a CAS on `redispatch_count`, so
        two replicas reconciling the same row re-dispatch it once."""
        return await self._advance(
            job_id,
            {
                "dispatched_at": None,
                "next_attempt_at": None,
                "dispatch_attempts": 0,
                "redispatch_count": redispatch_count + 1,
            },
            where=(Job.dispatched_at.is_not(None), Job.redispatch_count == redispatch_count),
        )

    async def mark_heard(self, *, job_id: uuid.UUID) -> bool:
        """The ML server says the job is queued there: it is not quiet any more."""
        return await self._advance(job_id, {"last_event_at": utcnow()})


def _changed(res: Result[Any]) -> bool:
    """Whether an UPDATE/DELETE touched a row."""
    return isinstance(res, CursorResult) and res.rowcount > 0
