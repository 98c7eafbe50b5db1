"""Where the Celery task meets the runner: one job run, one failed-job report, model warm-up.

Kept apart from `celery_app` so the task logic there stays free of the runner's imports (the
API process enqueues without loading the ML stack). Each pool process runs its analyses in its
own analysis child (`executor_child`), which holds the models: a native crash on one upload
costs that child and fails the job MEDIA_CRASHED after one retry, instead of killing the pool
process and sending the message round the queue again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from ecg_protocol import ErrorCode, ProcessRequest
from ml_server.callbacks import CallbackSender, JobNotifier
from ml_server.config import MLSettings
from ml_server.executor_child import ChildAnalyser
from ml_server.store import MLJobStatus
from ml_server.store_redis import RedisJobStore

logger = logging.getLogger(__name__)

ExecuteFn = Callable[[ProcessRequest], None]
FailFn = Callable[[ProcessRequest, ErrorCode, str], None]


def bind_runner(settings: MLSettings, store: RedisJobStore) -> tuple[ExecuteFn, FailFn]:
    """The two things a worker process does with a job, bound to its settings and store."""
    from ml_server.runner import execute_job

    sender = CallbackSender(settings)
    analyser = process_analyser(settings)

    def execute(request: ProcessRequest) -> None:
        execute_job(request, settings=settings, store=store, analyser=analyser, sender=sender)

    def fail(request: ProcessRequest, code: ErrorCode, message: str) -> None:
        record = store.update(
            request.job_id,
            status=MLJobStatus.FAILED,
            error_code=code.value,
            error_message=message,
        )
        if record is None or record.status is not MLJobStatus.FAILED or record.error_code != code:
            return  # unknown, or already final with another outcome: report nothing new
        notifier = JobNotifier(
            sender, job_id=request.job_id, fastapi_base_url=request.fastapi_base_url
        )
        delivered = notifier.failed(code.value, message, record.stage)
        store.update(request.job_id, callback_delivered=delivered)
        logger.warning("job %s failed %s (callback delivered: %s)", request.job_id, code, delivered)

    return execute, fail


_analyser: ChildAnalyser | None = None


def process_analyser(settings: MLSettings) -> ChildAnalyser:
    """This pool process's analysis child (one per process, started on first use)."""
    global _analyser
    if _analyser is None:
        _analyser = ChildAnalyser(settings, name=f"ml-analysis-{os.getpid()}")
    return _analyser


def warm_models(settings: MLSettings) -> None:
    """Start this pool process's analysis child and wait for its models, before the first job."""
    analyser = process_analyser(settings)
    if not analyser.warm():
        raise RuntimeError("the analysis process could not load the models")
