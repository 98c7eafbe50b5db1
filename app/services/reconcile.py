"""Reconciliation: ask the ML server about jobs that went quiet (docs/protocol.md, *Job state
machine*).

A dispatched job with no event for `ML_API_TIMEOUT` seconds is looked up with `GET /jobs/{id}`:
a finished result is stored (the callback was lost), a failure is recorded, a running job is
marked as heard from, and a job the ML server does not know is re-dispatched, a bounded number of
times, then failed `JOB_LOST`. An unreachable ML server changes nothing until the job has gone
unheard for its deadline — max(`ML_UNREACHABLE_DEADLINE_S`, `ML_UNREACHABLE_DURATION_FACTOR` ×
media duration), the duration read with ffprobe only once the fixed part has passed — and then
the job fails `ML_SERVER_UNREACHABLE` instead of waiting forever.
Every write is one of JobService's guarded transitions (`requeue_lost`, `mark_heard`, the
callback's own forward move), so a callback racing in, or another replica reconciling the same
row, is never overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.services import metrics
from app.services.job_service import QuietJob, utcnow, with_jobs
from app.services.ml_client import MLClient, MLJobState, MLRequestError
from ecg_protocol import ErrorCode, JobStatus, normalize_timestamp_fields

logger = logging.getLogger(__name__)

BATCH = 100
# Durations remembered per replica (one probe per job); cleared wholesale past this many.
MAX_REMEMBERED_DURATIONS = 10_000

DurationProbe = Callable[[str], Awaitable[float | None]]


class Reconciler:
    """Periodically reconciles quiet dispatched jobs against the ML server's `GET /jobs/{id}`."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        client: MLClient | None,
        on_redispatch: Callable[[], None],
        on_final: Callable[[], None] | None = None,
        probe_duration: DurationProbe | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._client = client
        self._on_redispatch = on_redispatch
        self._on_final = on_final  # a job became final here: its client event is due
        self._probe_duration = probe_duration
        self._durations: dict[uuid.UUID, float | None] = {}
        self._quiet = timedelta(seconds=settings.ml_api_timeout)

    async def run_forever(self) -> None:
        interval = max(0.05, self._settings.reconcile_interval_s)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile_once()
            except Exception:  # the loop must outlive any one failure; the next round retries
                logger.exception("reconcile: round failed; next round in %.1fs", interval)

    async def reconcile_once(self) -> int:
        """One round; returns how many jobs it looked up."""
        if self._client is None:
            return 0
        unheard_since = utcnow() - self._quiet
        rows = await with_jobs(
            self._sessions,
            lambda jobs: jobs.quiet_dispatched(unheard_since=unheard_since, limit=BATCH),
        )
        for index, row in enumerate(rows):
            try:
                state = await self._client.get_job(str(row.job_id))
            except MLRequestError as exc:
                logger.warning("reconcile: ML server unreachable (job_id=%s): %s", row.job_id, exc)
                # The others would fail the same way: check each one's deadline instead.
                for quiet in rows[index:]:
                    await self._unreachable(quiet, exc)
                return len(rows)
            await self._apply(row.job_id, row.redispatch_count, state)
        return len(rows)

    async def _unreachable(self, row: QuietJob, error: MLRequestError) -> None:
        """Fail the job `ML_SERVER_UNREACHABLE` once it has gone unheard past its deadline."""
        silent_s = (utcnow() - row.last_heard).total_seconds()
        floor = self._settings.ml_unreachable_deadline_s
        if silent_s < floor:
            logger.info(
                "reconcile: leaving job_id=%s for later (unheard %.0fs)", row.job_id, silent_s
            )
            return
        # Only now is the duration worth a probe: the deadline is never below the floor.
        duration = await self._duration(row.job_id, row.file_key)
        deadline = floor
        if duration is not None:
            deadline = max(floor, self._settings.ml_unreachable_duration_factor * duration)
        if silent_s < deadline:
            return
        basis = f"{duration:.1f}s of media" if duration is not None else "media duration unknown"
        await self._fail(
            row.job_id,
            ErrorCode.ML_SERVER_UNREACHABLE.value,
            f"the ML server could not be reached and the job went unheard for {silent_s:.0f}s "
            f"(deadline {deadline:.0f}s, {basis}); last error: {error.message}",
        )
        self._durations.pop(row.job_id, None)

    async def _duration(self, job_id: uuid.UUID, file_key: str | None) -> float | None:
        if job_id in self._durations:
            return self._durations[job_id]
        duration = None
        if self._probe_duration is not None and file_key:
            try:
                duration = await self._probe_duration(file_key)
            except (OSError, ValueError) as exc:  # storage or ffprobe trouble: duration unknown
                logger.warning("reconcile: probing job_id=%s failed: %s", job_id, exc)
        if len(self._durations) >= MAX_REMEMBERED_DURATIONS:
            self._durations.clear()
        self._durations[job_id] = duration
        return duration

    async def _apply(
        self, job_id: uuid.UUID, redispatch_count: int, state: MLJobState | None
    ) -> None:
        if state is None:
            await self._lost(job_id, redispatch_count)
        elif state.status == "completed" and state.result is not None:
            await self._completed(job_id, state.result)
        elif state.status == "failed":
            code = state.error_code or ErrorCode.UNKNOWN_ERROR.value
            await self._fail(job_id, code, state.error_message or "the ML server reported failure")
        else:
            await self._heard(job_id, state)

    async def _lost(self, job_id: uuid.UUID, redispatch_count: int) -> None:
        if redispatch_count >= self._settings.reconcile_max_redispatch:
            await self._fail(
                job_id,
                ErrorCode.JOB_LOST.value,
                f"the ML server lost the job {redispatch_count + 1} time(s)",
            )
            return
        changed = await with_jobs(
            self._sessions,
            lambda jobs: jobs.requeue_lost(job_id=job_id, redispatch_count=redispatch_count),
        )
        if changed:
            logger.warning(
                "reconcile: ML server lost job_id=%s; re-dispatching (%d/%d)",
                job_id,
                redispatch_count + 1,
                self._settings.reconcile_max_redispatch,
            )
            self._on_redispatch()

    async def _completed(self, job_id: uuid.UUID, raw_result: dict[str, Any]) -> None:
        try:
            result = normalize_timestamp_fields(raw_result)
        except ValidationError as exc:
            await self._fail(
                job_id, ErrorCode.ML_SERVER_ERROR.value, f"invalid result from ML server: {exc}"
            )
            return
        if await self._transition(job_id, JobStatus.COMPLETED, result=result):
            metrics.record_job_completed()
            logger.info("job completed (result fetched by reconcile) - job_id=%s", job_id)

    async def _fail(self, job_id: uuid.UUID, code: str, message: str) -> None:
        text = message if message.startswith(f"{code}:") else f"{code}: {message}"
        if await self._transition(job_id, JobStatus.FAILED, error_code=code, error_message=text):
            metrics.record_job_failed(code)
            logger.error("reconcile: job failed - job_id=%s code=%s", job_id, code)

    async def _heard(self, job_id: uuid.UUID, state: MLJobState) -> None:
        # Running at the ML server: record the news (last_event_at, forward-only progress).
        if state.progress is not None or state.stage not in (None, "queued"):
            await self._transition(
                job_id, JobStatus.PROCESSING, progress=state.progress or 0, stage=state.stage
            )
        else:
            await with_jobs(self._sessions, lambda jobs: jobs.mark_heard(job_id=job_id))
        logger.info(
            "reconcile: job still running at ML server - job_id=%s stage=%s progress=%s",
            job_id,
            state.stage,
            state.progress,
        )

    async def _transition(
        self,
        job_id: uuid.UUID,
        status: JobStatus,
        *,
        progress: int | None = None,
        stage: str | None = None,
        result: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        # The webhook's own forward-only move, so both paths store the same thing.
        changed = await with_jobs(
            self._sessions,
            lambda jobs: jobs.update_job_status(
                job_id=job_id,
                status=status,
                progress=progress,
                stage=stage,
                result=result,
                error_code=error_code,
                error_message=error_message,
            ),
        )
        if changed and status.is_final and self._on_final is not None:
            self._on_final()
        return changed
