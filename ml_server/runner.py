"""One job from start to final callback: download → analysis → callbacks.

`execute_job` is synchronous and owns no event loop, so a thread-pool worker and a Celery task
call it the same way. Every failure ends as exactly one `failed` callback with a specific code;
the temporary directory is removed before the final callback is sent, whatever happened.

The analysis (decode and every stage after it) goes through an `Analyser`: the executors pass a
`ChildAnalyser` (a child process holding the models, `executor_child`), so a native crash on one
upload never takes this process down; without one it runs in this process (tests, embedding).
Each job's temp folder is named after this process's pid, so a later start can tell the folders
of dead processes from live ones (`remove_dead_temp_dirs`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from ecg_protocol import AnalysisResult, ErrorCode, MLJobStatus, ProcessRequest, Stage
from ecg_serving.net import UrlGuard
from ml_server import metrics
from ml_server.callbacks import CallbackSender, JobCallbacks
from ml_server.config import MLSettings
from ml_server.pipeline.data import DecodingHints
from ml_server.pipeline.download import DownloadOptions, download, media_suffix
from ml_server.pipeline.errors import Cancelled, StageError
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from ml_server.store import JobStore

if TYPE_CHECKING:
    from ml_server.models import Models

logger = logging.getLogger(__name__)

# Zero-argument: each caller binds its own settings (thread pool, Celery worker).
ModelsProvider = Callable[[], "Models"]
DOWNLOAD_SHARE = 10  # download reports 0–10; the pipeline 10–99; completed is 100
TEMP_PREFIX = "ecg-ml-"


class Analyser(Protocol):
    """Runs decode and every stage after it on a local file (in a child process, or here)."""

    def analyse(
        self,
        media: Path,
        *,
        options: PipelineOptions,
        job_id: str,
        progress: Callable[[Stage, int], None],
        should_cancel: Callable[[], bool],
        asr_model: str | None = None,
    ) -> AnalysisResult:
        """Raise StageError (with a code) or Cancelled; never anything else for a job failure.
        `asr_model`: the id of a held ASR model the request named (None: the configured one)."""
        ...


class InProcessAnalyser:
    """`run_pipeline` in this process, with the models from `models_provider`."""

    def __init__(self, models_provider: ModelsProvider) -> None:
        self._models_provider = models_provider

    def analyse(
        self,
        media: Path,
        *,
        options: PipelineOptions,
        job_id: str,
        progress: Callable[[Stage, int], None],
        should_cancel: Callable[[], bool],
        asr_model: str | None = None,
    ) -> AnalysisResult:
        return run_pipeline(
            media,
            options=options,
            models=_load_models(self._models_provider).choose(asr_model),
            progress=progress,
            should_cancel=should_cancel,
            job_id=job_id,
        )


def remove_dead_temp_dirs(root: Path | None = None) -> int:
    """Remove job temp folders whose process is gone (a crash or kill -9 left them); count them."""
    base = Path(root or tempfile.gettempdir())
    removed = 0
    for folder in base.glob(f"{TEMP_PREFIX}*"):
        pid_part = folder.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        # Folders without a pid come from releases before the pid was in the name.
        if pid_part.isdigit() and _process_alive(int(pid_part)):
            continue
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        logger.info("removed %d temp folders of dead jobs in %s", removed, base)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    stage: Stage | None


class Abandoned(Exception):
    """The server is shutting down: stop without a final callback (the backend re-dispatches)."""


def download_options(settings: MLSettings) -> DownloadOptions:
    return DownloadOptions(
        max_bytes=settings.ml_max_download_bytes,
        total_timeout_s=settings.ml_download_timeout_s,
        stall_timeout_s=settings.ml_download_stall_timeout_s,
    )


def display_filename(request: ProcessRequest) -> str | None:
    """The name the result's metadata shows: the request's, else the URL's last path part."""
    if request.filename:
        return request.filename
    name = PurePosixPath(unquote(urlsplit(request.video_url).path)).name
    return name or None


def execute_job(
    request: ProcessRequest,
    *,
    settings: MLSettings,
    store: JobStore,
    sender: CallbackSender,
    models_provider: ModelsProvider | None = None,
    analyser: Analyser | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Run one job to its final callback. Never raises for a job failure.

    `analyser` runs the analysis (the executors pass a child-process one); without it the
    pipeline runs here on `models_provider`'s models (default `get_models(settings)`, cached
    per process). `should_stop` turning true means the process is shutting down: the job stops
    at its next stage boundary without a final callback.
    """
    job_id = request.job_id
    if analyser is None:
        analyser = InProcessAnalyser(models_provider or _cached_models(settings))
    callbacks = JobCallbacks(sender, job_id=job_id, fastapi_base_url=request.fastapi_base_url)
    started = time.monotonic()
    try:
        outcome = _work(request, settings, store, callbacks, analyser, should_stop)
    except Abandoned:
        callbacks.close()
        logger.warning("job abandoned at shutdown job_id=%s", job_id)
        return
    metrics.JOB_SECONDS.observe(time.monotonic() - started)
    delivered: bool | None
    if isinstance(outcome, AnalysisResult):
        delivered = _complete(job_id, outcome, store, callbacks, started)
    else:
        delivered = _fail(job_id, outcome, store, callbacks)
    if delivered is None:
        return
    store.update(job_id, callback_delivered=delivered)
    if not delivered:
        logger.warning("final callback undelivered; result kept at GET /jobs/%s", job_id)


def fail_job(
    request: ProcessRequest,
    code: ErrorCode,
    message: str,
    *,
    store: JobStore,
    sender: CallbackSender,
) -> None:
    """Fail a job from outside its run (its worker was lost, it passed the hard time limit, the
    runner raised): the run's own failure report (`_fail`), at the stage it had reached. Nothing
    happens to a job that is unknown or already final."""
    job_id = request.job_id
    record = store.get(job_id)
    if record is None or record.status.is_final:
        return
    callbacks = JobCallbacks(sender, job_id=job_id, fastapi_base_url=request.fastapi_base_url)
    delivered = _fail(job_id, Failure(code, message, record.stage), store, callbacks)
    if delivered is not None:
        store.update(job_id, callback_delivered=delivered)


def _cached_models(settings: MLSettings) -> ModelsProvider:
    """The process's models for `settings` (loaded on first use, then cached)."""

    def models_provider() -> Models:
        from ml_server.models import get_models

        return get_models(settings)

    return models_provider


def _complete(
    job_id: str, result: AnalysisResult, store: JobStore, callbacks: JobCallbacks, started: float
) -> bool:
    """Record the result, then send the completed callback; True if it was delivered."""
    store.update(
        job_id, status=MLJobStatus.COMPLETED, stage=Stage.DONE, progress=100, result=result
    )
    metrics.JOBS.labels(outcome="completed", error_code="").inc()
    logger.info("job completed job_id=%s in %.1fs", job_id, time.monotonic() - started)
    return callbacks.completed(result)


def _fail(job_id: str, failure: Failure, store: JobStore, callbacks: JobCallbacks) -> bool | None:
    """Record the failure (a cancel is its own status), then send the failed callback; whether
    it was delivered. None, and nothing sent, when the job had meanwhile become final with
    another outcome (the store keeps a final state): one job, one final callback."""
    cancelled = failure.code == ErrorCode.CANCELLED
    status = MLJobStatus.CANCELLED if cancelled else MLJobStatus.FAILED
    record = store.update(
        job_id, status=status, error_code=failure.code, error_message=failure.message
    )
    if record is not None and (record.status is not status or record.error_code != failure.code):
        callbacks.close()
        logger.info("job %s already final (%s); no failed callback", job_id, record.status)
        return None
    metrics.JOBS.labels(
        outcome="cancelled" if cancelled else "failed", error_code=failure.code
    ).inc()
    logger.info(
        "job failed job_id=%s code=%s stage=%s: %s",
        job_id,
        failure.code,
        failure.stage,
        failure.message,
    )
    return callbacks.failed(failure.code, failure.message, failure.stage)


def _work(
    request: ProcessRequest,
    settings: MLSettings,
    store: JobStore,
    callbacks: JobCallbacks,
    analyser: Analyser,
    should_stop: Callable[[], bool] | None,
) -> AnalysisResult | Failure:
    """Download and analyse; every failure comes back as a `Failure`, never raised."""
    job_id = request.job_id

    def stopping() -> bool:
        return should_stop is not None and should_stop()

    def should_cancel() -> bool:
        return store.is_cancelled(job_id) or stopping()

    def report(stage: Stage, progress: int) -> None:
        store.update(job_id, status=MLJobStatus.PROCESSING, stage=stage, progress=progress)
        callbacks.progress(stage, progress)

    try:
        if store.is_cancelled(job_id):
            raise Cancelled(Stage.QUEUED)
        report(Stage.DOWNLOAD, 0)
        prefix = f"{TEMP_PREFIX}{os.getpid()}-"
        with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
            media = Path(tmp) / f"media{media_suffix(request.video_url)}"
            download_s = _download(request, media, settings, report, should_cancel)
            if should_cancel():
                raise Cancelled(Stage.DECODE)
            result = analyser.analyse(
                media,
                options=pipeline_options(request),
                asr_model=request.options.model,
                progress=lambda stage, pct: report(stage, max(DOWNLOAD_SHARE, min(99, pct))),
                should_cancel=should_cancel,
                job_id=job_id,
            )
        return _with_download_time(result, download_s)
    except Cancelled as exc:
        if stopping() and not store.is_cancelled(job_id):
            raise Abandoned from exc
        return Failure(ErrorCode.CANCELLED, "the job was cancelled", exc.stage)
    except StageError as exc:
        return Failure(exc.code, exc.message, exc.stage)
    except Exception as exc:
        # Anything unexpected is still one failed callback, never a hung job.
        logger.exception("job crashed job_id=%s", job_id)
        return Failure(ErrorCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:500], None)


def _download(
    request: ProcessRequest,
    media: Path,
    settings: MLSettings,
    report: Callable[[Stage, int], None],
    should_cancel: Callable[[], bool],
) -> float:
    """Fetch the video into `media` (the first DOWNLOAD_SHARE of progress); its seconds."""
    started = time.monotonic()
    size = download(
        request.video_url,
        media,
        opts=download_options(settings),
        guard=UrlGuard.from_entries(settings.allowed_private_hosts),
        progress=lambda pct: report(Stage.DOWNLOAD, pct * DOWNLOAD_SHARE // 100),
        should_cancel=should_cancel,
    )
    download_s = time.monotonic() - started
    metrics.STAGE_SECONDS.labels(stage=Stage.DOWNLOAD.value).observe(download_s)
    logger.info("downloaded job_id=%s bytes=%d in %.2fs", request.job_id, size, download_s)
    report(Stage.DOWNLOAD, DOWNLOAD_SHARE)
    return download_s


def pipeline_options(request: ProcessRequest) -> PipelineOptions:
    """What the analysis takes from the request: languages, speaker bounds, decoding hints."""
    return PipelineOptions(
        language=request.language,
        min_speakers=request.options.min_speakers,
        max_speakers=request.options.max_speakers,
        filename=display_filename(request),
        decoding=DecodingHints(
            task=request.options.task or "transcribe",
            prompt=request.options.prompt,
            hotwords=request.options.hotwords,
            temperature=request.options.temperature,
        ),
    )


def _load_models(models_provider: ModelsProvider) -> Models:
    try:
        return models_provider()
    except Exception as exc:
        raise StageError(
            Stage.DECODE, ErrorCode.ML_SERVER_ERROR, f"the models could not be loaded: {exc}"
        ) from exc


def _with_download_time(result: AnalysisResult, download_s: float) -> AnalysisResult:
    for stage, seconds in result.metadata.processing_time.items():
        metrics.STAGE_SECONDS.labels(stage=stage).observe(seconds)
    timing = {"download": round(download_s, 3), **result.metadata.processing_time}
    metadata = result.metadata.model_copy(update={"processing_time": timing})
    return result.model_copy(update={"metadata": metadata})
