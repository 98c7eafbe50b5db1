"""Callback ingestion (docs/protocol.md, *Callbacks*): verify raw bytes, parse once, apply
forward-only.

What the headers alone can refuse is refused before a byte of the body is read
(`start_verification`: unsigned, stale, malformed signature; `seen_before`: a webhook-id already
applied). The body is then verified while it streams (`read_verified`): the HMAC is computed
chunk by chunk and the bytes wait on disk past `SPOOL_IN_MEMORY_BYTES`, so a forged body costs
the backend no memory whatever its size. Only a verified body is parsed, exactly once, with
`model_validate_json` on the raw bytes (a 3 MB result is parsed a single time).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from app.core.config import Settings
from app.services import metrics
from app.services.errors import InvalidSignature, JobNotFound, WebhookMisuse
from app.services.job_service import JobService, Transition, parse_job_id
from app.services.status import StatusCache
from ecg_protocol import (
    CallbackPayload,
    JobStatus,
    SignatureError,
    StreamingVerifier,
)
from ecg_protocol.signing import ID_HEADER

logger = logging.getLogger(__name__)

CORRECT_ENDPOINT = "GET /api/upload-video/status/{job_id}"
WRONG_ENDPOINT = "POST /api/upload-video/result (ML Server Webhook Only)"
_NODE_AGENTS = ("node", "node-fetch", "undici", "axios")
# Only a body this small is looked at for misuse (a status query is tiny); an unsigned request
# is never read further than this.
MISUSE_PEEK_BYTES = 4096
# An unverified body is held in memory up to this size, then waits on disk until its signature
# is settled: ten parallel forged 60 MB posts cost about ten times this, not 600 MB.
SPOOL_IN_MEMORY_BYTES = 1024 * 1024


def looks_like_misuse(body: bytes | None, user_agent: str | None) -> bool:
    """A frontend polling the webhook (the guide's misuse check, docs/guide.md): a Node user
    agent, or a status-query body.

        `body` is None when it was not read (too large to be a status query).
    """
    ua = (user_agent or "").strip().lower()
    if ua == "node" or ua.startswith(tuple(f"{a}/" for a in _NODE_AGENTS)) or ua in _NODE_AGENTS:
        return True
    if body is None or len(body) > MISUSE_PEEK_BYTES:
        return False
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError):  # malformed or nested too deeply: not a status query
        return False
    return isinstance(data, dict) and "status" not in data and ("job_id" in data or not data)


def misuse_error() -> WebhookMisuse:
    return WebhookMisuse(
        "This endpoint is for the ML server's callbacks only; poll the job status instead.",
        message="Frontend API misuse detected - wrong endpoint",
        correct_endpoint=CORRECT_ENDPOINT,
        wrong_endpoint=WRONG_ENDPOINT,
    )


def start_verification(headers: Mapping[str, str], settings: Settings) -> StreamingVerifier:
    """A verifier for the body to come; 401 now for what the headers alone show to be
    unsigned, stale, malformed or (unless allowed) legacy-only."""
    try:
        return StreamingVerifier(
            headers,
            settings.signing_secret(),
            tolerance_s=settings.webhook_tolerance_s,
            strict=not settings.webhook_allow_legacy_signature,
        )
    except SignatureError as exc:
        metrics.record_callback("rejected_signature")
        logger.warning("callback refused before reading it: %s (%s)", exc.message, exc.reason)
        raise InvalidSignature(exc.message, reason=exc.reason) from exc


async def seen_before(headers: Mapping[str, str], jobs: JobService) -> bool:
    """Whether the callback's webhook-id was applied already: a retry or a replay, answered
    `duplicate` without its body being read (an id names one message, whatever the body)."""
    msg_id = headers.get(ID_HEADER)
    if not msg_id or not await jobs.webhook_seen(msg_id=msg_id):
        return False
    metrics.record_callback("duplicate")
    logger.info("callback with a webhook-id already seen, body not read: msg_id=%s", msg_id)
    return True


async def read_verified(
    chunks: AsyncIterator[bytes], verifier: StreamingVerifier, *, user_agent: str | None
) -> tuple[str | None, bytes]:
    """The body's webhook-id and bytes, once its signature is verified while it streams.

    The HMAC is fed chunk by chunk; the bytes stay in memory up to `SPOOL_IN_MEMORY_BYTES`,
    then wait in a temporary file, and come back into memory only once verified. The size is
    bounded by the body-limit middleware (WEBHOOK_MAX_BYTES).
    """
    with tempfile.SpooledTemporaryFile(
        max_size=SPOOL_IN_MEMORY_BYTES, prefix="ecg-callback-"
    ) as spool:
        async for chunk in chunks:
            verifier.update(chunk)
            # One network chunk (≤ 64 KB) into memory or the page cache: too short to hand off.
            spool.write(chunk)
        size = spool.tell()
        try:
            verified = verifier.verify()
        except SignatureError as exc:
            metrics.record_callback("rejected_signature")
            small = None
            if size <= MISUSE_PEEK_BYTES:
                spool.seek(0)
                small = spool.read()
            if looks_like_misuse(small, user_agent):
                raise misuse_error() from exc
            logger.warning("callback refused: %s (%s)", exc.message, exc.reason)
            raise InvalidSignature(exc.message, reason=exc.reason) from exc
        spool.seek(0)
        body = await asyncio.to_thread(spool.read) if size > SPOOL_IN_MEMORY_BYTES else spool.read()
        return verified.msg_id, body


async def ingest_callback(
    *,
    body: bytes,
    msg_id: str | None,
    user_agent: str | None,
    jobs: JobService,
    cache: StatusCache | None = None,
    on_final: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Parse and apply one verified callback; the answer body for the ML server.

    `on_final` is called once the callback made its job final (its client event is due).
    """
    payload = parse_callback(body, user_agent)
    job_id = parse_job_id(payload.job_id)
    if job_id is None:
        metrics.record_callback("unknown_job")
        logger.warning("callback for an unknown job (id is not a UUID): job_id=%s", payload.job_id)
        raise JobNotFound(f"unknown job {payload.job_id}")

    status = JobStatus(payload.status)
    outcome = await jobs.apply_callback(
        job_id=job_id,
        msg_id=msg_id,
        status=status,
        progress=payload.progress,
        stage=payload.stage.value if payload.stage else None,
        # The stored (start/end) shape, serialized in Rust straight from the validated model.
        result_json=payload.result.model_dump_json() if payload.result is not None else None,
        error_message=payload.error_message,
        error_code=str(payload.error_code) if payload.error_code else None,
    )
    metrics.record_callback(outcome.outcome.value)
    if outcome.outcome == Transition.NOT_FOUND:
        logger.warning("callback for an unknown job: job_id=%s", job_id)
        raise JobNotFound(f"unknown job {job_id}")
    if outcome.outcome != Transition.APPLIED:
        logger.info("callback ignored (%s): job_id=%s", outcome.outcome.value, job_id)
        return {"status": outcome.outcome.value, "job_id": str(job_id)}

    if cache is not None:
        cache.invalidate(job_id)
    _count_final(status, payload, outcome.created_at, job_id=str(job_id))
    if on_final is not None and status.is_final:
        on_final()
    return {"status": "received", "job_id": str(job_id), "job_status": status.value}


def parse_callback(body: bytes, user_agent: str | None) -> CallbackPayload:
    """The verified body validated once; a frontend that posted here by mistake gets the
    misuse answer."""
    try:
        return CallbackPayload.model_validate_json(body)
    except ValidationError:
        metrics.record_callback("invalid")
        if looks_like_misuse(body, user_agent):
            raise misuse_error() from None
        raise


def _count_final(
    status: JobStatus, payload: CallbackPayload, created_at: datetime | None, *, job_id: str
) -> None:
    """Metrics and a log line for an applied callback that made its job final."""
    duration = (datetime.now(UTC) - created_at).total_seconds() if created_at else None
    if status == JobStatus.COMPLETED:
        metrics.record_job_completed(duration)
        logger.info("job completed: job_id=%s", job_id)
    elif status == JobStatus.FAILED:
        code = str(payload.error_code or "UNKNOWN_ERROR")
        metrics.record_job_failed(code, duration)
        logger.info("job failed: job_id=%s code=%s", job_id, code)
