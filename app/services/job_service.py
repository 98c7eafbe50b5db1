"""JobService: the guide's job methods on SQLAlchemy 2 (async), owner-scoped.

Every state change is guarded in SQL, so duplicates and races are harmless: status only moves
forward (pending → processing → completed | failed), progress never goes down, and a final
job is never touched again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, case, cast, delete, literal, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.job import Job, WebhookEvent
from ecg_protocol import JobStatus

OPEN = (JobStatus.PENDING.value, JobStatus.PROCESSING.value)
FINAL = (JobStatus.COMPLETED.value, JobStatus.FAILED.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        return bool(getattr(res, "rowcount", 0))

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
            if getattr(res, "rowcount", 0):
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
        """Move an open job forward (guarded in SQL); False when it was final or missing.

        `result_json` is the result already serialized (the webhook's fast path); it is stored
        as is instead of being re-serialized from `result`.
        """
        now = utcnow()
        values: dict[str, Any] = {"last_event_at": now, "updated_at": now}
        if status == JobStatus.PROCESSING:
            p = progress if progress is not None else 0
            values["status"] = JobStatus.PROCESSING.value
            # Progress never goes down; the stage follows the progress it came with.
            values["progress"] = case((Job.progress < p, p), else_=Job.progress)
            if stage is not None:
                values["stage"] = case((Job.progress <= p, stage), else_=Job.stage)
        elif status == JobStatus.COMPLETED:
            values.update(
                status=JobStatus.COMPLETED.value,
                progress=100,
                stage=stage or "done",
                result=self._json_text(result_json) if result_json is not None else result,
                error_code=None,
                error_message=None,
            )
        elif status == JobStatus.FAILED:
            values.update(
                status=JobStatus.FAILED.value,
                stage=stage if stage is not None else Job.stage,
                error_code=error_code,
                error_message=error_message,
            )
        else:
            return False  # nothing moves a job back to pending
        res = await self.session.execute(
            update(Job)
            .where(Job.job_id == job_id, Job.status.in_(OPEN))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if commit:
            await self.session.commit()
        return bool(getattr(res, "rowcount", 0))

    def _json_text(self, text: str) -> Any:
        # PostgreSQL parses the text into JSONB; SQLite keeps JSON as text already. Either way
        # a 3 MB result skips a Python json.dumps round.
        if self.session.get_bind().dialect.name == "postgresql":
            return cast(literal(text, Text), JSONB)
        return type_coerce(literal(text, Text), Text)

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
