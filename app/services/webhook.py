"""Callback ingestion (docs/protocol.md, *Callbacks*): verify raw bytes, parse once, apply
forward-only.

The signature headers are checked before the body is read (`check_callback_headers`), the body
is verified before it is parsed, then validated exactly once with `model_validate_json` on the
raw bytes (a 3 MB result is parsed a single time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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
    check_headers,
    verify_signature,
)

logger = logging.getLogger(__name__)

CORRECT_ENDPOINT = "GET /api/upload-video/status/{job_id}"
WRONG_ENDPOINT = "POST /api/upload-video/result (ML Server Webhook Only)"
_NODE_AGENTS = ("node", "node-fetch", "undici", "axios")
# Only a body this small is looked at for misuse (a status query is tiny); an unsigned request
# is never read further than this.
MISUSE_PEEK_BYTES = 4096


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


def check_callback_headers(headers: Mapping[str, str], settings: Settings) -> None:
    """Refuse (401) what the headers alone show to be unsigned, stale or legacy-only."""
    try:
        check_headers(
            headers,
            tolerance_s=settings.webhook_tolerance_s,
            strict=not settings.webhook_allow_legacy_signature,
        )
    except SignatureError as exc:
        metrics.record_callback("rejected_signature")
        logger.warning("callback refused before reading it: %s (%s)", exc.message, exc.reason)
        raise InvalidSignature(exc.message, reason=exc.reason) from exc


async def ingest_callback(
    *,
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    jobs: JobService,
    cache: StatusCache | None = None,
) -> dict[str, Any]:
    """Verify, parse and apply one callback; the answer body for the ML server."""
    msg_id, payload = verify_and_parse(body, headers, settings)
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
    return {"status": "received", "job_id": str(job_id), "job_status": status.value}


def verify_and_parse(
    body: bytes, headers: Mapping[str, str], settings: Settings
) -> tuple[str | None, CallbackPayload]:
    """The callback's webhook-id and payload: the signature verified on the raw bytes, then the
    body validated once. A frontend that posted here by mistake gets the misuse answer."""
    user_agent = headers.get("user-agent")
    try:
        verified = verify_signature(
            body,
            headers,
            settings.signing_secret(),
            tolerance_s=settings.webhook_tolerance_s,
            strict=not settings.webhook_allow_legacy_signature,
        )
    except SignatureError as exc:
        metrics.record_callback("rejected_signature")
        if looks_like_misuse(body, user_agent):
            raise misuse_error() from exc
        logger.warning("callback refused: %s (%s)", exc.message, exc.reason)
        raise InvalidSignature(exc.message, reason=exc.reason) from exc
    try:
        payload = CallbackPayload.model_validate_json(body)
    except ValidationError:
        metrics.record_callback("invalid")
        if looks_like_misuse(body, user_agent):
            raise misuse_error() from None
        raise
    return verified.msg_id, payload


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
