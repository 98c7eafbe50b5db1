"""The backend's public answers that its clients read: the upload URL, the capacity check,
the accepted processing request and the job status (docs/guide.md; docs/protocol.md).

The backend's routes answer with these models and `ecg analyze` parses them, so the client
and the server cannot drift apart on a field name. The status answer is pre-serialized on the
backend's fast path (`app.services.status`); a test checks that its bytes parse as
`JobStatusAnswer`.
"""

from __future__ import annotations

from pydantic import BaseModel

from ecg_protocol.schemas import AnalysisResult, JobStatus


class GenerateUrlResponse(BaseModel):
    """`POST /api/upload-video/generate-url`."""

    presigned_url: str
    file_key: str
    expires_in: int
    url: str  # legacy duplicate of presigned_url
    fileKey: str  # legacy duplicate of file_key


class CapacityResponse(BaseModel):
    """`GET /api/upload-video/capacity` (ext): may this client start a job now?"""

    limited: bool  # false: no rate limit on request-process
    limit: int | None = None  # requests per window
    remaining: int | None = None
    window_s: int | None = None
    retry_after_s: int = 0  # wait this long before request-process when remaining is 0

    @property
    def must_wait(self) -> bool:
        return self.limited and self.remaining == 0 and self.retry_after_s > 0


class ProcessStarted(BaseModel):
    """`POST /api/upload-video/request-process` (202)."""

    message: str = "Video processing started."
    job_id: str


class JobStatusAnswer(BaseModel):
    """`GET /api/upload-video/status/{job_id}`: the guide's status shape plus stage, error and
    timestamps; `result` once completed."""

    job_id: str
    status: JobStatus
    progress: int = 0
    stage: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    result: AnalysisResult | None = None
