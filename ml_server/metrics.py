"""Prometheus metrics of the ML server (`GET /metrics`).

One registry per process, so tests that build several apps never register a metric twice.
Queue depth and worker gauges are read from the executor at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS = Counter(
    "ml_jobs_total",
    "Jobs that ended, by outcome (completed, failed, cancelled) and error code.",
    ["outcome", "error_code"],
    registry=REGISTRY,
)
JOBS_ACCEPTED = Counter(
    "ml_jobs_accepted_total", "POST /process requests that queued new work.", registry=REGISTRY
)
STAGE_SECONDS = Histogram(
    "ml_stage_duration_seconds",
    "Time spent per pipeline stage (download included).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "ml_job_duration_seconds",
    "Wall time of a job from start of work to its final callback.",
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
CALLBACKS = Counter(
    "ml_callbacks_total",
    "Callback messages by kind (processing, completed, failed) and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("ml_queue_depth", "Jobs waiting for a worker.", registry=REGISTRY)
RUNNING = Gauge("ml_jobs_running", "Jobs being processed now.", registry=REGISTRY)
WORKERS = Gauge("ml_workers", "Worker threads of this server.", registry=REGISTRY)
MODELS_LOADED = Gauge("ml_models_loaded", "1 once the models are loaded.", registry=REGISTRY)


def render() -> bytes:
    """The text exposition of every metric."""
    return generate_latest(REGISTRY)
