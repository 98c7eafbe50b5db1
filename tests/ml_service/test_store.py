"""MemoryJobStore: create once, forward-only updates, cancel, retention purge."""

from __future__ import annotations

from ecg_protocol import AnalysisResult, ProcessRequest, Stage
from ecg_protocol.jobs import MLJobStatus
from ml_server.store import MemoryJobStore


def req(job_id: str = "j1") -> ProcessRequest:
    return ProcessRequest(
        job_id=job_id, video_url="https://x.example/v.mp4", fastapi_base_url="https://b.example"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_create_once_and_get() -> None:
    store = MemoryJobStore(60)
    assert store.create_if_absent(req())
    assert not store.create_if_absent(req())
    record = store.get("j1")
    assert record is not None and record.status is MLJobStatus.QUEUED and record.progress == 0
    assert store.get("nope") is None
    assert store.update("nope", progress=5) is None


def test_progress_never_goes_down_and_final_is_final() -> None:
    store = MemoryJobStore(60)
    store.create_if_absent(req())
    store.update("j1", status=MLJobStatus.PROCESSING, stage=Stage.TRANSCRIBE, progress=40)
    record = store.update("j1", stage=Stage.DIARIZE, progress=30)
    assert record is not None and record.progress == 40 and record.stage is Stage.DIARIZE
    store.update("j1", status=MLJobStatus.COMPLETED, progress=100, result=AnalysisResult())
    record = store.update("j1", status=MLJobStatus.FAILED, error_code="X")
    assert record is not None and record.status is MLJobStatus.COMPLETED
    assert record.error_code is None and record.result is not None
    record = store.update("j1", callback_delivered=True)
    assert record is not None and record.callback_delivered


def test_cancel_queued_is_immediate_and_running_is_flagged() -> None:
    store = MemoryJobStore(60)
    store.create_if_absent(req("q"))
    assert store.request_cancel("q")
    record = store.get("q")
    assert record is not None and record.status is MLJobStatus.CANCELLED
    assert store.is_cancelled("q")
    assert not store.request_cancel("q")  # already final

    store.create_if_absent(req("r"))
    store.update("r", status=MLJobStatus.PROCESSING)
    assert store.request_cancel("r")
    record = store.get("r")
    assert record is not None and record.status is MLJobStatus.PROCESSING
    assert store.is_cancelled("r")
    assert not store.request_cancel("unknown") and not store.is_cancelled("unknown")


def test_purge_drops_only_old_final_records() -> None:
    clock = Clock()
    store = MemoryJobStore(100, clock=clock)
    for job_id in ("done", "running", "fresh"):
        store.create_if_absent(req(job_id))
    store.update("done", status=MLJobStatus.FAILED, error_code="X")
    store.update("running", status=MLJobStatus.PROCESSING)
    clock.now += 101
    store.update("fresh", status=MLJobStatus.FAILED, error_code="X")
    assert store.purge_expired() == 1
    assert store.get("done") is None
    assert store.get("running") is not None and store.get("fresh") is not None
    assert len(store) == 2
