"""The jobs table (the guide's columns, docs/guide.md, plus the outbox and ownership columns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ecg_protocol import JobStatus

__all__ = ["Base", "Job", "JobStatus", "WebhookEvent"]

# JSONB on PostgreSQL (the guide's column type), plain JSON on the embedded SQLite.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(128), default="anonymous", index=True)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING.value)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    stage: Mapped[str | None] = mapped_column(String(32))
    video_url: Mapped[str | None] = mapped_column(Text)
    file_key: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="auto")
    options: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    # Outbox columns: dispatch is driven from the row, so a restart resumes it.
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redispatch_count: Mapped[int] = mapped_column(Integer, default=0)

    # Client webhook outbox: the caller's `webhook_url` hears `job.completed`/`job.failed` once
    # the job is final, retried with backoff, driven from the row like dispatch.
    webhook_url: Mapped[str | None] = mapped_column(Text)
    notify_state: Mapped[str | None] = mapped_column(String(16))  # pending|delivered|failed
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notify_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Names a user gave the speakers (SPEAKER_00 → "Alice"), kept with the job for every view.
    speaker_names: Mapped[dict[str, str] | None] = mapped_column(JsonDoc)

    __table_args__ = (
        Index("ix_jobs_dispatch", "status", "next_attempt_at"),
        Index("uq_jobs_owner_idempotency", "owner", "idempotency_key", unique=True),
        Index("ix_jobs_notify", "notify_state", "notify_next_at"),
    )


class WebhookEvent(Base):
    """Seen `webhook-id`s: a replayed or retried callback is recognised and ignored."""

    __tablename__ = "webhook_events"

    msg_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
