"""Signed HTTP client for the ML server (docs/protocol.md, *ML server API* and *Signing*).

Every failure is turned into one `MLRequestError` carrying the guide's error code (docs/guide.md),
whether it is worth retrying, and the server's `Retry-After`, so the dispatcher decides without
parsing HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from pydantic import TypeAdapter, ValidationError

from ecg_protocol import (
    CancelAccepted,
    ErrorBody,
    ErrorCode,
    JobRecord,
    MLJobStatus,
    MLServerHealth,
    ProcessAccepted,
    ProcessRequest,
    retry_after_s,
    sign_headers,
)
from ecg_protocol.bodyless import bodyless_signed_content
from ecg_protocol.health import PlainHealth

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# A cancel is best effort on behalf of a caller who already has its answer: never wait long.
CANCEL_TIMEOUT_S = 5.0


class MLRequestError(Exception):
    """A request to the ML server did not succeed; `code` is the guide's error code."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class MLJobState:
    """What `GET /jobs/{id}` (an `ecg_protocol.JobRecord`) says, in the backend's terms."""

    status: str  # "running" | "completed" | "failed"
    progress: int | None = None
    stage: str | None = None
    result: dict[str, Any] | None = None  # wire shape (`start_time`/`end_time`)
    error_code: str | None = None
    error_message: str | None = None
    record: JobRecord | None = None  # None only for an answer that broke the protocol


@dataclass(frozen=True, slots=True)
class MLHealthAnswer:
    """What `GET /health` answered. A 200 is healthy whatever its body (the guide's own check is
    `response.status == 200`, and its server answers "ML Server is running"); `health` is set
    only when that 200 is our richer `MLServerHealth`, which adds languages and queue depth."""

    http_status: int
    health: MLServerHealth | None
    error: ErrorBody | None  # a non-200 in the protocol's error shape
    text: str  # the body's start, for an answer in neither shape
    message: str | None = None  # a guide-style 200's own words (a JSON string or `message`)

    @property
    def healthy(self) -> bool:
        return self.http_status == 200

    @property
    def detail(self) -> str:
        """The server's own words: its health message, its error detail, or its raw text."""
        if self.health is not None:
            return self.health.message
        if self.error is not None:
            return self.error.detail
        return self.message if self.message is not None else self.text


def process_message_id(job_id: UUID | str, redispatch_count: int) -> str:
    """`webhook-id` of a dispatch: stable across retries, new for each re-dispatch of a lost job."""
    hex_id = job_id.hex if isinstance(job_id, UUID) else UUID(str(job_id)).hex
    return f"msg_process_{hex_id}_{redispatch_count}"


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_s(response.headers.get("Retry-After"))


def _error_body(response: httpx.Response) -> ErrorBody | None:
    """The ML server's `ErrorBody`, or None for anything else (a proxy's page, an empty body)."""
    try:
        return ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return None


def _rejection(response: httpx.Response) -> str:
    """'ML server refused the job (HTTP 400 URL_NOT_ALLOWED): <its detail>'."""
    body = _error_body(response)
    what = f"HTTP {response.status_code}" + (f" {body.error_code}" if body else "")
    return f"ML server refused the job ({what}): {_short(body.detail if body else response.text)}"


def _rejection_code(response: httpx.Response) -> ErrorCode:
    """UNSUPPORTED_LANGUAGE passes through (the job's own fault); other refusals are
    DISPATCH_REJECTED."""
    body = _error_body(response)
    if body is not None and body.error_code == ErrorCode.UNSUPPORTED_LANGUAGE:
        return ErrorCode.UNSUPPORTED_LANGUAGE
    return ErrorCode.DISPATCH_REJECTED


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class MLClient:
    """`POST /process` and `GET /jobs/{id}` on `MODEL_SERVER_URL`, signed with the shared key."""

    def __init__(
        self, *, base_url: str, http: httpx.AsyncClient, secret: str, timeout_s: float
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = http
        self._secret = secret
        # A dead host should fail fast; a slow answer may take the whole ML_API_TIMEOUT.
        self._timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))

    @property
    def base_url(self) -> str:
        return self._base

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes,
        msg_id: str,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        # A body-less request signs its method and path, so it cannot be replayed on another job.
        signed = body or bodyless_signed_content(method, path)
        headers = sign_headers(signed, self._secret, msg_id=msg_id)
        if body:
            headers["Content-Type"] = "application/json"
        url = f"{self._base}{path}"
        timeout = http_timeout or self._timeout
        try:
            return await self._http.request(
                method, url, content=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise MLRequestError(
                ErrorCode.TIMEOUT_ERROR,
                f"ML server did not answer {method} {path} in {timeout.read}s",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise MLRequestError(
                ErrorCode.CONNECTION_ERROR,
                f"cannot reach ML server at {self._base}: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc

    async def process(self, request: ProcessRequest, *, msg_id: str) -> ProcessAccepted | None:
        """Hand one job to the ML server; raises `MLRequestError` unless it answers 2xx.

        The 2xx answer is read as `ProcessAccepted`; one that is not is logged as a protocol
        error and gives None, yet the job counts as handed over (the server said 2xx, and the
        reconciler's `GET /jobs/{id}` will find out what it really holds).
        """
        body = request.model_dump_json(exclude_none=True).encode()
        response = await self._send("POST", "/process", body=body, msg_id=msg_id)
        status = response.status_code
        if 200 <= status < 300:
            return _accepted(response, job_id=request.job_id)
        detail = f"HTTP {status} from ML server: {_short(response.text)}"
        if status == 429:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR,
                detail,
                retryable=True,
                retry_after_s=_retry_after(response),
                http_status=status,
            )
        if status >= 500 or status == 408:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR,
                detail,
                retryable=True,
                retry_after_s=_retry_after(response),
                http_status=status,
            )
        # Any other 4xx means the request itself is unacceptable: resending cannot help.
        raise MLRequestError(
            _rejection_code(response),
            _rejection(response),
            retryable=False,
            http_status=status,
        )

    async def get_job(self, job_id: str) -> MLJobState | None:
        """The ML server's view of a job, or None when it does not know the job (404)."""
        response = await self._send(
            "GET", f"/jobs/{job_id}", body=b"", msg_id=f"msg_query_{UUID(job_id).hex}"
        )
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR,
                f"HTTP {response.status_code} from GET /jobs/{job_id}: {_short(response.text)}",
                retryable=True,
                http_status=response.status_code,
            )
        return parse_job_state(response.content, job_id=job_id)

    async def cancel(self, job_id: str) -> CancelAccepted | None:
        """`DELETE /jobs/{id}`: the server's `CancelAccepted`, or None when there is nothing to
        cancel (404: unknown; 409: already final). Raises `MLRequestError` for anything else,
        an answer that is not a `CancelAccepted` included."""
        path = f"/jobs/{job_id}"
        response = await self._send(
            "DELETE",
            path,
            body=b"",
            msg_id=f"msg_cancel_{UUID(job_id).hex}",
            http_timeout=httpx.Timeout(
                min(CANCEL_TIMEOUT_S, self._timeout.read or CANCEL_TIMEOUT_S)
            ),
        )
        if response.status_code in (404, 409, 410):
            return None
        if not 200 <= response.status_code < 300:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR,
                f"HTTP {response.status_code} from DELETE {path}: {_short(response.text)}",
                retryable=response.status_code >= 500,
                http_status=response.status_code,
            )
        try:
            return CancelAccepted.model_validate_json(response.content)
        except ValidationError as exc:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR,
                f"protocol error: DELETE {path} answered no CancelAccepted: {_short(str(exc))}",
                retryable=False,
                http_status=response.status_code,
            ) from exc

    async def health(self, *, timeout_s: float) -> MLHealthAnswer:
        """`GET /health` (unsigned: it says nothing about any job). Transport failures raise
        `httpx.HTTPError`; every answer, even a malformed one, comes back as `MLHealthAnswer`."""
        response = await self._http.get(f"{self._base}/health", timeout=timeout_s)
        return read_health(response.status_code, response.content)


def read_health(http_status: int, body: bytes) -> MLHealthAnswer:
    """Read a `/health` answer: any 200 is healthy (a guide-era ML server's plain answer
    included), and one that is an `MLServerHealth` also brings its extras; anything else is
    read as the protocol's `ErrorBody` where it is one."""
    text = body[:500].decode("utf-8", "replace")
    if http_status != 200:
        try:
            error = ErrorBody.model_validate_json(body)
        except ValidationError:
            error = None
        return MLHealthAnswer(http_status=http_status, health=None, error=error, text=text)
    try:
        health: MLServerHealth | None = MLServerHealth.model_validate_json(body)
    except ValidationError:
        health = None
    return MLHealthAnswer(
        http_status=http_status, health=health, error=None, text=text, message=_said(body)
    )


_PLAIN_HEALTH: TypeAdapter[str | PlainHealth] = TypeAdapter(str | PlainHealth)


def _said(body: bytes) -> str | None:
    """A plain health answer's words: a JSON string, or an object's `message` or `status`."""
    try:
        said = _PLAIN_HEALTH.validate_json(body)
    except ValidationError:
        return None
    return said if isinstance(said, str) else said.message or said.status


def _accepted(response: httpx.Response, *, job_id: str) -> ProcessAccepted | None:
    try:
        return ProcessAccepted.model_validate_json(response.content)
    except ValidationError as exc:
        logger.error(
            "protocol error: POST /process for job %s answered HTTP %d but no ProcessAccepted: %s",
            job_id,
            response.status_code,
            _short(str(exc), 500),
        )
        return None


def parse_job_state(body: bytes | str, *, job_id: str) -> MLJobState:
    """Read a `GET /jobs/{id}` answer as the `JobRecord` it must be.

    No guessing: a status the protocol does not name, a malformed record or a result that is
    not an `AnalysisResult` is a protocol error, and the job fails `ML_SERVER_ERROR` saying so
    (as an invalid result always did) rather than being read as some nearby state.
    """
    try:
        record = JobRecord.model_validate_json(body)
    except ValidationError as exc:
        logger.error("protocol error: GET /jobs/%s answered no JobRecord: %s", job_id, exc)
        return MLJobState(
            status="failed",
            error_code=ErrorCode.ML_SERVER_ERROR.value,
            error_message=f"protocol error: GET /jobs/{job_id} answered no JobRecord: "
            + _short(str(exc), 500),
        )
    if record.job_id != job_id:
        return MLJobState(
            status="failed",
            error_code=ErrorCode.ML_SERVER_ERROR.value,
            error_message=f"protocol error: GET /jobs/{job_id} answered job {record.job_id}",
        )
    return _state_of(record)


def _state_of(record: JobRecord) -> MLJobState:
    if record.status is MLJobStatus.COMPLETED and record.result is not None:
        status = "completed"
    elif record.status in (MLJobStatus.FAILED, MLJobStatus.CANCELLED):
        status = "failed"
    else:
        # queued/processing, or completed without its result yet: still in progress.
        status = "running"
    return MLJobState(
        status=status,
        progress=record.progress,
        stage=record.stage.value,
        result=record.result.to_wire() if record.result is not None else None,
        error_code=record.error_code,
        error_message=record.error_message,
        record=record,
    )
