"""Durable dispatch (docs/protocol.md, *Job state machine*): the job row is the outbox.

request-process only writes a `pending` row and calls `wake()`. This loop claims due rows, sends
each to `POST {MODEL_SERVER_URL}/process` (signed) and records the outcome on the row, so a
backend that dies at any point resumes from the database after restart.

Claiming is safe across backend processes sharing one PostgreSQL: `SELECT … FOR UPDATE SKIP
LOCKED` plus a lease (`next_attempt_at = now + lease`) committed before the request goes out. The
lease outlives the request timeout, so nobody else can claim a row while its send is in flight;
a crashed sender's rows come back when the lease runs out. SQLite (embedded, one process) claims
with a compare-and-swap UPDATE instead. Every outcome is written with an SQL guard on the status,
so a callback that raced in is never overwritten. The claims and outcomes are JobService's named
transitions (`claim_for_dispatch`, `mark_dispatched`, `schedule_retry`, `fail_dispatch`); this
module decides when to call which.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.services import metrics
from app.services.job_service import ClaimedJob, JobService, utcnow, with_jobs
from app.services.media_probe import media_duration_s
from app.services.ml_client import MLClient, MLRequestError, process_message_id
from app.services.reconcile import Reconciler
from app.services.storage import Storage, display_filename
from ecg_protocol import ErrorCode, ProcessOptions, ProcessRequest
from ecg_serving.backoff import Backoff

logger = logging.getLogger(__name__)

# Sends in flight per backend process; each holds one claimed row.
MAX_IN_FLIGHT = 16
# A lease outlives the request timeout by up to this much, so a slow send is never claimed twice.
LEASE_MARGIN_S = 10.0
# Longest wait a 429's Retry-After may impose on one attempt.
MAX_RETRY_AFTER_S = 600.0


async def wait_event(event: asyncio.Event, *, timeout_s: float) -> bool:
    """Wait for `event` at most `timeout_s`; True when it was set.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives just as the
    awaited event fires (CPython gh-86296), so `stop()` would wait forever on a loop that never
    saw its cancel. `asyncio.timeout` counts cancellations and always lets ours through.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await event.wait()
    except TimeoutError:
        return False


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, timeout_s: float) -> bool:
    """Cancel `tasks` and wait for them to end, at most `timeout_s`; True when all ended."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    if not pending:
        return True
    done, pending = await asyncio.wait(pending, timeout=timeout_s)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.error("shutdown: task %s ended with %r", task.get_name(), task.exception())
    for task in pending:
        logger.error("shutdown: task %s did not stop within %.1fs", task.get_name(), timeout_s)
    return not pending


class Dispatcher:
    """Sends pending jobs to the ML server from the database, and reconciles quiet ones."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        storage: Storage | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        on_final: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        # Mints fresh download URLs: the one stored at request time may have expired.
        self._storage = storage
        self._client = (
            MLClient(
                base_url=settings.model_server_url,
                http=http,
                secret=settings.signing_secret(),
                timeout_s=settings.ml_api_timeout,
            )
            if settings.model_server_url
            else None
        )
        # The guide's schedule (docs/guide.md: 5 s, then 10 s; DISPATCH_RETRY_DELAYS), then failed.
        self._backoff = Backoff.fixed(settings.retry_delays, max_retry_after_s=MAX_RETRY_AFTER_S)
        self._on_final = on_final  # a job failed here: its client event is due
        # The lease must outlive a send (request timeout plus the time to record the outcome).
        margin = min(LEASE_MARGIN_S, settings.ml_api_timeout)
        self._lease = timedelta(
            seconds=max(settings.dispatch_lease_s, settings.ml_api_timeout + margin)
        )
        self._max_in_flight = max(1, max_in_flight)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.reconciler = Reconciler(
            settings=settings,
            session_factory=session_factory,
            client=self._client,
            on_redispatch=self.wake,
            on_final=on_final,
            probe_duration=self._probe_duration,
        )

    @property
    def ml_client(self) -> MLClient | None:
        """The one signed client of the ML server (None without `MODEL_SERVER_URL`); the routes
        that talk to the ML server (health, job cancel) share it, secret read once at start."""
        return self._client

    async def _probe_duration(self, file_key: str) -> float | None:
        """The stored video's duration (None without a URL source or when unreadable)."""
        if self._storage is None:
            return None
        return await media_duration_s(self._storage.generate_download_url(file_key))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the dispatch loop and the reconciler; due rows from before a restart go first."""
        if self._loop_task is not None:
            return
        if self._client is None:
            logger.warning("MODEL_SERVER_URL is not set: jobs will fail with CONNECTION_ERROR")
        self._loop_task = asyncio.create_task(self._run(), name="ecg-dispatch")
        self._reconcile_task = asyncio.create_task(
            self.reconciler.run_forever(), name="ecg-reconcile"
        )
        self.wake()

    async def stop(self, grace_s: float = 5.0, timeout_s: float = 5.0) -> bool:
        """Stop claiming; let sends in flight finish for `grace_s`, then cancel them.

        Bounded: a task that outlives `timeout_s` after its cancellation is logged and left
        behind rather than awaited forever. True when everything stopped in time.
        """
        loops = [t for t in (self._loop_task, self._reconcile_task) if t is not None]
        self._loop_task = self._reconcile_task = None
        clean = await cancel_and_wait(loops, timeout_s=timeout_s)
        if self._sends:
            # A cancelled send keeps its lease: the row is retried once the lease runs out.
            _, pending = await asyncio.wait(set(self._sends), timeout=grace_s)
            clean = await cancel_and_wait(pending, timeout_s=timeout_s) and clean
        return clean

    def wake(self) -> None:
        """Look for due rows now (request-process calls this after committing a job)."""
        self._wake.set()

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        poll = max(0.01, self._settings.dispatch_poll_interval_s)
        while True:
            self._wake.clear()
            looked_at = utcnow()  # what the claim below may miss is what falls due after this
            free = self._max_in_flight - len(self._sends)
            claimed: list[ClaimedJob] = []
            if free > 0:
                try:
                    claimed = await self.claim(limit=free)
                except Exception:  # the loop must outlive any one failure (DB down, pool…)
                    logger.exception("dispatch: claiming jobs failed; retrying in %.1fs", poll)
            for job in claimed:
                task = asyncio.create_task(self._send(job), name=f"ecg-dispatch-{job.job_id}")
                self._sends.add(task)
                task.add_done_callback(self._send_done)
            if claimed and len(claimed) == free:
                continue  # more may be due right away
            await wait_event(self._wake, timeout_s=await self._idle_timeout(poll, looked_at))

    async def _idle_timeout(self, poll: float, looked_at: datetime) -> float:
        """How long to sleep: until the next retry or lease is due, at most `poll`.

        A retry delay shorter than the poll interval (or a dead replica's lease running out)
        must not wait for the next poll. Rows are counted from `looked_at`, when the last claim
        began, not from now: a row that fell due while that claim ran (a slow database, a loaded
        machine) was missed by it and must be claimed at once, not after a full poll interval.
        """
        try:
            next_due = await with_jobs(
                self._sessions, lambda jobs: jobs.next_dispatch_due(now=looked_at)
            )
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("dispatch: reading the next due time failed: %s", exc)
            return poll
        if next_due is None:
            return poll
        return max(0.01, min(poll, (next_due - utcnow()).total_seconds() + 0.01))

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        self._wake.set()  # a slot is free again

    # ------------------------------------------------------------------ claiming

    async def claim(self, *, limit: int) -> list[ClaimedJob]:
        """Lease up to `limit` due rows to this process and return them."""
        return await with_jobs(
            self._sessions, lambda jobs: jobs.claim_for_dispatch(lease=self._lease, limit=limit)
        )

    # ------------------------------------------------------------------ sending

    def _request_for(self, job: ClaimedJob) -> ProcessRequest:
        video_url = job.video_url
        if self._storage is not None and job.file_key:
            # A retry or re-dispatch may come after the stored URL expired: mint a fresh one.
            video_url = self._storage.generate_download_url(job.file_key)
        return ProcessRequest(
            job_id=str(job.job_id),
            video_url=video_url or "",
            fastapi_base_url=self._settings.fastapi_base_url,
            language=job.language,
            filename=display_filename(job.file_key) if job.file_key else None,
            options=ProcessOptions.model_validate(job.options or {}),
        )

    async def _send(self, job: ClaimedJob) -> None:
        job_id = str(job.job_id)
        try:
            request = self._request_for(job)
        except (ValidationError, ValueError) as exc:
            await self._fail(job, ErrorCode.DISPATCH_REJECTED, f"invalid job for dispatch: {exc}")
            return
        if self._client is None:
            error = MLRequestError(
                ErrorCode.CONNECTION_ERROR, "MODEL_SERVER_URL is not configured", retryable=True
            )
        else:
            logger.info(
                "sending job to ML server - job_id=%s attempt=%d url=%s",
                job_id,
                job.dispatch_attempts + 1,
                self._client.base_url,
            )
            metrics.record_ml_request()
            try:
                await self._client.process(
                    request, msg_id=process_message_id(job.job_id, job.redispatch_count)
                )
            except MLRequestError as exc:
                error = exc
            except Exception as exc:  # a bug must fail the job, not hang it
                logger.exception("unexpected error dispatching job_id=%s", job_id)
                error = MLRequestError(
                    ErrorCode.UNKNOWN_ERROR, f"{type(exc).__name__}: {exc}", retryable=True
                )
            else:
                await self._succeeded(job)
                return
        metrics.record_ml_request_error(error.code.value)
        logger.error("ML server request failed - job_id=%s error=%s", job_id, error)
        if error.retryable:
            await self._retry_or_fail(job, error)
        else:
            await self._fail(job, error.code, error.message)

    async def _succeeded(self, job: ClaimedJob) -> None:
        await self._record(lambda jobs: jobs.mark_dispatched(job_id=job.job_id))
        logger.info("job sent to ML server - job_id=%s", job.job_id)

    async def _retry_or_fail(self, job: ClaimedJob, error: MLRequestError) -> None:
        attempts = job.dispatch_attempts + 1
        if self._backoff.exhausted(attempts):
            await self._fail(job, error.code, error.message, attempts=attempts)
            return
        delay = self._backoff.delay_s(attempts, retry_after_s=error.retry_after_s)
        await self._record(
            lambda jobs: jobs.schedule_retry(
                job_id=job.job_id, lease_until=job.lease_until, attempts=attempts, delay_s=delay
            )
        )
        logger.info(
            "retrying job in %.1fs (%d/%d) - job_id=%s",
            delay,
            attempts,
            self._backoff.retries,
            job.job_id,
        )

    async def _fail(
        self, job: ClaimedJob, code: ErrorCode, message: str, *, attempts: int | None = None
    ) -> None:
        changed = await self._record(
            lambda jobs: jobs.fail_dispatch(
                job_id=job.job_id, code=code, message=message, attempts=attempts
            )
        )
        if changed:
            metrics.record_job_failed(code.value)
            logger.error("job failed at dispatch - job_id=%s code=%s", job.job_id, code.value)
            if self._on_final is not None:
                self._on_final()

    async def _record(self, transition: Callable[[JobService], Awaitable[bool]]) -> bool:
        """Record an outcome (one transition, its own transaction), retried over a short database
        hiccup; True when it changed the row."""
        for attempt in (1, 2, 3):
            try:
                return await with_jobs(self._sessions, transition)
            except (SQLAlchemyError, OSError):
                if attempt == 3:
                    # The lease expires and the row is claimed again: nothing is lost.
                    logger.exception("dispatch: recording an outcome failed")
                    return False
                await asyncio.sleep(0.2 * attempt)
        return False
