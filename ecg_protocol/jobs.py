"""The ML server's job record: what `GET /jobs/{job_id}` answers and the backend reads.

The ML server keeps it (`ml_server.store`); the backend's reconciler parses the same model, so
a status this module does not name is a protocol error on both sides, never a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ecg_protocol.schemas import AnalysisResult, Stage


class MLJobStatus(StrEnum):
    """A job's state on the ML server (the backend has its own, coarser one)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({MLJobStatus.COMPLETED, MLJobStatus.FAILED, MLJobStatus.CANCELLED})


def _now() -> datetime:
    return datetime.now(UTC)


class JobRecord(BaseModel):
    """What `GET /jobs/{job_id}` answers; `result` once completed (wire shape on output)."""

    model_config = ConfigDict(validate_assignment=False)

    job_id: str
    status: MLJobStatus = MLJobStatus.QUEUED
    stage: Stage = Stage.QUEUED
    progress: int = Field(default=0, ge=0, le=100)
    result: AnalysisResult | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    # False until the final callback got a 2xx; `callback_settled` once its attempts are over.
    callback_delivered: bool = False
    callback_settled: bool = False
    cancel_requested: bool = False


class CancelAccepted(BaseModel):
    """`DELETE /jobs/{job_id}` → 202: a queued job is cancelled now, a running one flagged."""

    job_id: str
    status: MLJobStatus
    cancel_requested: bool = True


class ProcessAccepted(BaseModel):
    """`POST /process` → 202: `queued`, or for a job id already known its current status."""

    job_id: str
    status: MLJobStatus
