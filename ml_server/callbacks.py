"""Callbacks: the ML server's signed webhook to the backend (docs/protocol.md, *Callbacks* and
*Signing*). Not the backend's client events (`app.services.client_webhooks`).

`CallbackSender.deliver` posts one message with retries (`ecg_serving.backoff`, exponential with
jitter) on network errors, 5xx and 429 (`Retry-After` honoured), none on other 4xx, a bounded
number of attempts. Every attempt of one message carries the same `webhook-id` (the receiver
dedups on it) and a fresh timestamp. `JobCallbacks` sends one job's progress in the background,
latest value wins and never lower than the last, so a slow backend never slows the analysis; the
final message is sent after it, synchronously.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

import httpx

from ecg_protocol import AnalysisResult, CallbackPayload, Stage, sign_headers
from ecg_protocol.errors import retry_after_s
from ecg_serving.backoff import Backoff
from ecg_serving.net import ResolutionError, UrlGuard, URLNotAllowed, guarded_client
from ml_server import metrics
from ml_server.config import MLSettings

logger = logging.getLogger(__name__)

RESULT_PATH = "/api/upload-video/result"
PROGRESS_ATTEMPTS = 2


def callback_url(fastapi_base_url: str) -> str:
    """`{fastapi_base_url}/api/upload-video/result` (the guide's webhook, docs/guide.md)."""
    return fastapi_base_url.rstrip("/") + RESULT_PATH


def callback_backoff(settings: MLSettings) -> Backoff:
    """The callbacks' retry policy: exponential, jittered, `ML_CALLBACK_*` settings."""
    return Backoff(
        max_attempts=max(1, settings.ml_callback_max_attempts),
        base_s=settings.ml_callback_backoff_base_s,
        max_s=settings.ml_callback_backoff_max_s,
        jitter=True,
    )


class CallbackSender:
    """Posts signed callbacks; one instance per process, shared by every job (thread-safe)."""

    def __init__(
        self,
        settings: MLSettings,
        *,
        guard: UrlGuard | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._secret = settings.signing_secret()
        self._backoff = callback_backoff(settings)
        self._timeout_s = settings.ml_callback_timeout_s
        self._guard = guard or UrlGuard.from_entries(settings.allowed_private_hosts)
        self._client = client or guarded_client(self._guard, timeout=httpx.Timeout(self._timeout_s))
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def backoff(self) -> Backoff:
        return self._backoff

    @property
    def timeout_s(self) -> float:
        """One POST's time limit (`ML_CALLBACK_TIMEOUT_S`)."""
        return self._timeout_s

    def close(self) -> None:
        self._client.close()

    def deliver(
        self,
        fastapi_base_url: str,
        payload: CallbackPayload,
        *,
        max_attempts: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Post `payload` until the backend accepts it (2xx); False when it never did."""
        url = callback_url(fastapi_base_url)
        kind = payload.status
        try:
            self._guard.check_url(url)
        except URLNotAllowed as exc:
            logger.error("callback refused job_id=%s: %s", payload.job_id, exc.message)
            metrics.CALLBACKS.labels(kind=kind, outcome="refused").inc()
            return False
        except ResolutionError as exc:  # may be transient: the attempts below retry it
            logger.warning("callback host check job_id=%s: %s", payload.job_id, exc)
        body = payload.model_dump_json(by_alias=True).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        attempts = max_attempts or self._backoff.max_attempts
        for attempt in range(1, attempts + 1):
            delay = self._attempt(url, body, msg_id, payload, attempt)
            if delay is None:
                metrics.CALLBACKS.labels(kind=kind, outcome="delivered").inc()
                return True
            if delay < 0 or attempt == attempts or (should_stop is not None and should_stop()):
                break
            self._sleep(delay)
        metrics.CALLBACKS.labels(kind=kind, outcome="undelivered").inc()
        logger.warning(
            "callback not delivered job_id=%s status=%s msg_id=%s", payload.job_id, kind, msg_id
        )
        return False

    def _attempt(
        self, url: str, body: bytes, msg_id: str, payload: CallbackPayload, attempt: int
    ) -> float | None:
        """One POST. None: delivered; ≥ 0: retry after that delay; < 0: give up."""
        headers = sign_headers(body, self._secret, msg_id=msg_id)
        headers["Content-Type"] = "application/json"
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.info(
                "callback attempt %d failed job_id=%s status=%s: %s",
                attempt,
                payload.job_id,
                payload.status,
                exc,
            )
            return self._backoff.delay_s(attempt, rng=self._rng)
        code = response.status_code
        if 200 <= code < 300:
            logger.debug("callback delivered job_id=%s status=%s", payload.job_id, payload.status)
            return None
        if code == 429 or code >= 500:
            hinted = retry_after_s(response.headers.get("retry-after"))
            delay = self._backoff.delay_s(attempt, retry_after_s=hinted, rng=self._rng)
            logger.info(
                "callback attempt %d got HTTP %d job_id=%s status=%s; retry in %.2fs",
                attempt,
                code,
                payload.job_id,
                payload.status,
                delay,
            )
            return delay
        # Another 4xx will not change on retry (bad signature, unknown job): give up now.
        logger.error(
            "callback rejected with HTTP %d job_id=%s status=%s: %s",
            code,
            payload.job_id,
            payload.status,
            response.text[:300],
        )
        return -1.0


class JobCallbacks:
    """One job's callbacks: background progress (monotonic, coalesced), then one final message."""

    def __init__(self, sender: CallbackSender, *, job_id: str, fastapi_base_url: str) -> None:
        self._sender = sender
        self._job_id = job_id
        self._base_url = fastapi_base_url
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: tuple[Stage, int] | None = None
        self._last: tuple[Stage, int] | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"callbacks-{job_id[:12]}", daemon=True
        )
        self._thread.start()

    def progress(self, stage: Stage, progress: int) -> None:
        """Queue a `processing` callback; lower progress than already reported is ignored."""
        progress = max(0, min(99, progress))
        with self._lock:
            floor = (self._pending or self._last or (stage, -1))[1]
            if progress < floor:
                progress = floor
            item = (stage, progress)
            if item == (self._pending or self._last):
                return
            self._pending = item
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                item = self._pending
                self._pending = None
            assert item is not None
            stage, progress = item
            payload = CallbackPayload(
                job_id=self._job_id,
                status="processing",
                progress=progress,
                stage=stage,
                message=f"Processing: {stage.value}",
            )
            self._sender.deliver(
                self._base_url,
                payload,
                max_attempts=min(PROGRESS_ATTEMPTS, self._sender.backoff.max_attempts),
                should_stop=self._is_closed,
            )
            with self._lock:
                self._last = item

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _stop_progress(self) -> None:
        with self._lock:
            self._closed = True
            self._pending = None
            self._wake.notify()
        # A progress post in flight is bounded by the callback timeout; the final one goes after.
        self._thread.join(timeout=self._sender.timeout_s + 1)

    def completed(self, result: AnalysisResult) -> bool:
        """Send the one `completed` callback; True when the backend accepted it."""
        self._stop_progress()
        return self._sender.deliver(
            self._base_url,
            CallbackPayload(
                job_id=self._job_id,
                status="completed",
                progress=100,
                stage=Stage.DONE,
                message="Processing completed",
                result=result,
            ),
        )

    def failed(self, code: str, message: str, stage: Stage | None) -> bool:
        """Send the one `failed` callback; True when the backend accepted it."""
        self._stop_progress()
        with self._lock:
            progress = self._last[1] if self._last else 0
        return self._sender.deliver(
            self._base_url,
            CallbackPayload(
                job_id=self._job_id,
                status="failed",
                progress=progress,
                stage=stage,
                message="Processing failed",
                error_code=code,
                error_message=message,
            ),
        )

    def close(self) -> None:
        """Stop the progress thread without a final message (shutdown)."""
        self._stop_progress()
