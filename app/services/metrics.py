"""Prometheus metrics: the guide's four points (docs/guide.md): requests sent, success rate,
processing time, error rate. Counters are per process; the ratios are computed from them at scrape
time.

The dispatcher calls `record_ml_request`, `record_ml_request_error` and `record_job_failed`;
the webhook calls `record_job_completed`, `record_job_failed` and `record_callback`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

ML_REQUESTS = Counter(
    "ecg_ml_requests_total",
    "Process requests sent to the ML server (guide: request count).",
    registry=REGISTRY,
)
ML_REQUEST_ERRORS = Counter(
    "ecg_ml_request_errors_total",
    "Process requests to the ML server that failed, by error code.",
    ["code"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "ecg_jobs_finished_total",
    "Jobs that reached a final state, by status and error code.",
    ["status", "code"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "ecg_job_processing_seconds",
    "Time from request-process to the final callback (guide: average processing time).",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
    registry=REGISTRY,
)
CALLBACKS = Counter(
    "ecg_callbacks_total",
    "Webhook callbacks received, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
SUCCESS_RATE = Gauge(
    "ecg_job_success_rate",
    "Completed jobs / finished jobs since start (guide: success rate).",
    registry=REGISTRY,
)
ERROR_RATE = Gauge(
    "ecg_job_error_rate",
    "Failed jobs / finished jobs since start (guide: error rate).",
    registry=REGISTRY,
)

_finished = {"completed": 0, "failed": 0}


def _ratio(status: str) -> float:
    total = _finished["completed"] + _finished["failed"]
    return _finished[status] / total if total else 0.0


SUCCESS_RATE.set_function(lambda: _ratio("completed"))
ERROR_RATE.set_function(lambda: _ratio("failed"))


def record_ml_request() -> None:
    """One process request sent to the ML server."""
    ML_REQUESTS.inc()


def record_ml_request_error(code: str) -> None:
    """One process request that failed with `code` (guide error codes)."""
    ML_REQUEST_ERRORS.labels(code=code).inc()


def record_job_completed(duration_s: float | None = None) -> None:
    """A job completed; `duration_s` from creation to completion."""
    _finished["completed"] += 1
    JOBS_FINISHED.labels(status="completed", code="").inc()
    if duration_s is not None and duration_s >= 0:
        PROCESSING_SECONDS.observe(duration_s)


def record_job_failed(code: str, duration_s: float | None = None) -> None:
    """A job failed with `code`."""
    _finished["failed"] += 1
    JOBS_FINISHED.labels(status="failed", code=code).inc()
    if duration_s is not None and duration_s >= 0:
        PROCESSING_SECONDS.observe(duration_s)


def record_callback(outcome: str) -> None:
    """One webhook call: accepted, duplicate, already_completed, rejected, unknown_job, …"""
    CALLBACKS.labels(outcome=outcome).inc()


def render() -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
