"""Job state the ML server keeps so a backend that missed a callback can fetch the outcome.

`JobStore` is the small interface the API, the runner and the executors share; the in-memory
store serves the thread-pool mode and a Redis-backed one serves Celery workers on other
machines. Final records are kept for `ML_RESULT_RETENTION_S`, then purged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from ecg_protocol import ProcessRequest
from ecg_protocol.jobs import JobRecord, MLJobStatus


class JobStore(Protocol):
    """Shared job state. Every method is atomic per job and safe to call from any thread."""

    def create_if_absent(self, request: ProcessRequest) -> bool:
        """Record a queued job; False when the job id is already known (do no new work)."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def update(self, job_id: str, **fields: object) -> JobRecord | None:
        """Apply fields; progress never goes down and a final status is never left."""
        ...

    def request_cancel(self, job_id: str) -> bool:
        """Stop a job: queued → cancelled now; running → flagged. False if unknown or final."""
        ...

    def is_cancelled(self, job_id: str) -> bool: ...

    def purge_expired(self) -> int:
        """Drop final records older than the retention period; return how many."""
        ...


def apply_update(record: JobRecord, fields: dict[str, object], now: datetime) -> JobRecord:
    """The forward-only update rule, shared by every store implementation.

    A final record only takes `callback_delivered`; writing it also marks the final callback
    settled (delivered, or given up after the last attempt).
    """
    if record.status.is_final:
        if "callback_delivered" not in fields:
            return record
        fields = {"callback_delivered": bool(fields["callback_delivered"])}
    if "callback_delivered" in fields:
        fields = {**fields, "callback_settled": True}
    data: dict[str, object] = {**dict(record), **fields}
    progress = fields.get("progress")
    if isinstance(progress, int):
        data["progress"] = max(record.progress, progress)
    data["updated_at"] = now
    return JobRecord.model_validate(data)


class MemoryJobStore:
    """Job state in this process (thread-pool mode)."""

    def __init__(self, retention_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self._retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}

    def _stamp(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def create_if_absent(self, request: ProcessRequest) -> bool:
        with self._lock:
            if request.job_id in self._jobs:
                return False
            now = self._stamp()
            self._jobs[request.job_id] = JobRecord(
                job_id=request.job_id, created_at=now, updated_at=now
            )
            return True

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def update(self, job_id: str, **fields: object) -> JobRecord | None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                return None
            updated = apply_update(record, fields, self._stamp())
            self._jobs[job_id] = updated
            return updated

    def request_cancel(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.status.is_final:
                return False
            changes: dict[str, object] = {"cancel_requested": True}
            if record.status is MLJobStatus.QUEUED:
                changes.update(
                    status=MLJobStatus.CANCELLED,
                    error_code="CANCELLED",
                    error_message="cancelled before it started",
                )
            self._jobs[job_id] = apply_update(record, changes, self._stamp())
            return True

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            record = self._jobs.get(job_id)
            return record is not None and record.cancel_requested

    def purge_expired(self) -> int:
        cutoff = self._clock() - self._retention_s
        with self._lock:
            expired = [
                job_id
                for job_id, record in self._jobs.items()
                if record.status.is_final and record.updated_at.timestamp() < cutoff
            ]
            for job_id in expired:
                del self._jobs[job_id]
            return len(expired)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
