"""Client events: `job.completed` / `job.failed` POSTed to the caller's `webhook_url`. Not the
ML server's callbacks (`POST /api/upload-video/result`, `app.services.webhook`).

Signed per Standard Webhooks with `CLIENT_WEBHOOK_SECRET` (`whsec_…`), so the official
`standardwebhooks` SDKs verify them; `webhook-id` is stable across retries of one event. The
jobs table is the outbox (`notify_state`): a loop claims final jobs whose webhook is due, sends,
and records the outcome, so a restart or a crashed replica loses no event; whoever makes a job
final wakes the loop, so an event goes out at once rather than at the next poll. Retries back off
exponentially (`ecg_serving.backoff`: `CLIENT_WEBHOOK_BACKOFF_S`, doubling, at most an hour
apart) for `CLIENT_WEBHOOK_MAX_ATTEMPTS` attempts. URLs pass the same SSRF guard as the ML server's
downloads: private and loopback targets only when listed in `WEBHOOK_ALLOWED_PRIVATE_HOSTS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.models.job import Job
from app.services.errors import InvalidInput
from app.services.job_service import JobService, NotifyState, utcnow
from ecg_protocol import JobStatus, sign_headers
from ecg_protocol.signing import SIGNATURE_HEADER
from ecg_serving.backoff import Backoff
from ecg_serving.net import ResolutionError, UrlGuard, URLNotAllowed, guarded_client

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0  # a claimed attempt not recorded by then (the sender died) is claimed again


def url_guard(settings: Settings) -> UrlGuard:
    """The SSRF policy for webhook URLs (`WEBHOOK_ALLOWED_PRIVATE_HOSTS`)."""
    return UrlGuard.from_entries(
        settings.webhook_private_hosts, setting="WEBHOOK_ALLOWED_PRIVATE_HOSTS"
    )


async def check_webhook_url(url: str, settings: Settings) -> str:
    """The URL if events may be sent there, else `InvalidInput` saying why (400)."""
    try:
        # Resolving can block on DNS: off the event loop.
        await asyncio.to_thread(url_guard(settings).check_url, url)
    except URLNotAllowed as exc:
        raise InvalidInput(f"webhook_url not allowed: {exc.message}") from exc
    except ResolutionError as exc:
        raise InvalidInput(f"webhook_url host does not resolve: {exc}") from exc
    return url


def event_for(job: Job, settings: Settings) -> dict[str, Any]:
    """The event body: what happened, and where to read the job and its result."""
    base = settings.fastapi_base_url.rstrip("/")
    completed = job.status == JobStatus.COMPLETED.value
    data: dict[str, Any] = {
        "job_id": str(job.job_id),
        "status": job.status,
        "status_url": f"{base}/api/upload-video/status/{job.job_id}",
    }
    if completed:
        data["result_url"] = f"{base}/api/upload-video/result/{job.job_id}?format=json"
    else:
        data["error_code"] = job.error_code
        data["error_message"] = job.error_message
    return {
        "type": "job.completed" if completed else "job.failed",
        "timestamp": (job.updated_at or utcnow()).isoformat(),
        "data": data,
    }


def client_event_backoff(settings: Settings) -> Backoff:
    """Waits between attempts: base, 2×base, 4×base … at most an hour."""
    return Backoff(
        max_attempts=settings.client_webhook_max_attempts,
        base_s=settings.client_webhook_backoff_s,
        max_s=MAX_BACKOFF_S,
    )


class ClientEventSender:
    """The loop that delivers due client events; `start()` in the lifespan, `stop()` after."""

    def __init__(
        self, *, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.secret = settings.client_webhook_signing_secret()
        self.backoff = client_event_backoff(settings)
        self._client = guarded_client(
            url_guard(settings), timeout=httpx.Timeout(settings.client_webhook_timeout_s)
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ecg-client-webhooks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._client.close()

    def wake(self) -> None:
        """A job just became final: look now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            # Cleared before the round: a job made final while it runs wakes the next one.
            self._wake.clear()
            try:
                await self.deliver_due()
            except SQLAlchemyError as exc:
                logger.warning("client webhooks: database unavailable (%s); retrying", exc)
            except Exception:  # the loop must outlive any one failure, or events stop silently
                logger.exception("client webhooks: delivery round failed; retrying")
            try:
                async with asyncio.timeout(self.settings.dispatch_poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def deliver_due(self, now: datetime | None = None) -> int:
        """Send every due event once; the number sent (delivered or not)."""
        now = now or utcnow()
        async with self.session_factory() as session:
            jobs = await JobService(session).claim_notifications(now=now, lease_s=LEASE_S)
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def _deliver(self, job: Job) -> None:
        body = json.dumps(event_for(job, self.settings), separators=(",", ":")).encode()
        headers = sign_headers(body, self.secret, msg_id=f"evt_{job.job_id}_{job.status}")
        headers.pop(SIGNATURE_HEADER)  # clients get the Standard Webhooks headers only
        headers["Content-Type"] = "application/json"
        url = job.webhook_url or ""
        try:
            resp = await asyncio.to_thread(self._client.post, url, content=body, headers=headers)
            ok, why = resp.is_success, f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        attempts = job.notify_attempts
        if ok:
            state, retry_at = NotifyState.DELIVERED, None
        elif self.backoff.exhausted(attempts):
            state, retry_at = NotifyState.FAILED, None
        else:
            delay = self.backoff.delay_s(attempts)
            state, retry_at = NotifyState.PENDING, utcnow() + timedelta(seconds=delay)
        log = logger.info if ok else logger.warning
        log(
            "client webhook job_id=%s attempt=%d %s: %s",
            job.job_id,
            attempts,
            state.value if state != NotifyState.PENDING else "retry scheduled",
            why,
        )
        async with self.session_factory() as session:
            await JobService(session).finish_notification(
                job_id=job.job_id, state=state, retry_at=retry_at
            )
