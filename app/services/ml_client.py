"""Signed HTTP client for the ML server (SYSTEM.md §4, §5).

Every failure is turned into one `MLRequestError` carrying the guide's error code, whether it is
worth retrying, and the server's `Retry-After`, so the dispatcher decides without parsing HTTP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

import httpx

from ecg_protocol import ErrorCode, ProcessRequest, sign_headers
from ecg_protocol.bodyless import bodyless_signed_content

logger = logging.getLogger(__name__)

# States an ML server may report for a job it knows; anything else is treated as running.
_DONE = frozenset({"completed", "succeeded", "success", "done"})
_FAILED = frozenset({"failed", "error", "cancelled", "canceled"})
CONNECT_TIMEOUT_S = 10.0


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
    """What `GET /jobs/{id}` said about a job the ML server knows."""

    status: str  # normalized: "running" | "completed" | "failed"
    progress: int | None = None
    stage: str | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def process_message_id(job_id: UUID | str, redispatch_count: int) -> str:
    """`webhook-id` of a dispatch: stable across retries, new for each re-dispatch of a lost job."""
    hex_id = job_id.hex if isinstance(job_id, UUID) else UUID(str(job_id)).hex
    return f"msg_process_{hex_id}_{redispatch_count}"


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _rejection(response: httpx.Response) -> str:
    """'ML server refused the job (HTTP 400 URL_NOT_ALLOWED): <its detail>'."""
    code = detail = None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        code = doc.get("error_code")
        detail = doc.get("detail")
    what = f"HTTP {response.status_code}" + (f" {code}" if isinstance(code, str) else "")
    text = detail if isinstance(detail, str) else response.text
    return f"ML server refused the job ({what}): {_short(text)}"


def _rejection_code(response: httpx.Response) -> ErrorCode:
    """UNSUPPORTED_LANGUAGE passes through (the job's own fault); other refusals are
    DISPATCH_REJECTED."""
    try:
        doc = response.json()
    except ValueError:
        return ErrorCode.DISPATCH_REJECTED
    code = doc.get("error_code") if isinstance(doc, dict) else None
    if code == ErrorCode.UNSUPPORTED_LANGUAGE.value:
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

    async def _send(self, method: str, path: str, *, body: bytes, msg_id: str) -> httpx.Response:
        # A body-less request signs its method and path, so it cannot be replayed on another job.
        signed = body or bodyless_signed_content(method, path)
        headers = sign_headers(signed, self._secret, msg_id=msg_id)
        if body:
            headers["Content-Type"] = "application/json"
        url = f"{self._base}{path}"
        try:
            return await self._http.request(
                method, url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise MLRequestError(
                ErrorCode.TIMEOUT_ERROR,
                f"ML server did not answer {method} {path} in {self._timeout.read}s",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise MLRequestError(
                ErrorCode.CONNECTION_ERROR,
                f"cannot reach ML server at {self._base}: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc

    async def process(self, request: ProcessRequest, *, msg_id: str) -> None:
        """Hand one job to the ML server; returns on 2xx, raises `MLRequestError` otherwise."""
        body = request.model_dump_json(exclude_none=True).encode()
        response = await self._send("POST", "/process", body=body, msg_id=msg_id)
        status = response.status_code
        if 200 <= status < 300:
            return
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
        try:
            doc = response.json()
        except json.JSONDecodeError as exc:
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR, "GET /jobs answered non-JSON", retryable=True
            ) from exc
        if not isinstance(doc, dict):
            raise MLRequestError(
                ErrorCode.ML_SERVER_ERROR, "GET /jobs answered a non-object", retryable=True
            )
        return parse_job_state(doc)


def cancel_headers(job_id: str, secret: str) -> dict[str, str]:
    """Signature headers for `DELETE /jobs/{job_id}` on the ML server."""
    return sign_headers(bodyless_signed_content("DELETE", f"/jobs/{job_id}"), secret)


def parse_job_state(doc: dict[str, Any]) -> MLJobState:
    """Read `GET /jobs/{id}` leniently: `status` or `state`, result at top level or nested."""
    raw_status = str(doc.get("status") or doc.get("state") or "").lower()
    result = doc.get("result")
    if raw_status in _DONE and isinstance(result, dict):
        status = "completed"
    elif raw_status in _FAILED:
        status = "failed"
    else:
        # queued/processing/running, or "completed" without its result yet: still in progress.
        status = "running"
    progress = doc.get("progress")
    return MLJobState(
        status=status,
        progress=progress if isinstance(progress, int) else None,
        stage=doc.get("stage") if isinstance(doc.get("stage"), str) else None,
        result=result if isinstance(result, dict) else None,
        error_code=str(doc["error_code"]) if doc.get("error_code") else None,
        error_message=str(doc["error_message"]) if doc.get("error_message") else None,
        raw=doc,
    )
