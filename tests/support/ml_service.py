"""The ML server under test: `ecg ml-server` as a real process, the bodies it is sent, the
settings it runs with in-process, and an independent check of the signatures it makes.

    with start_ml_server(root, tmp_dir) as server:           # healthy on a free port
        server.post(request_body(new_job_id(), video_url, receiver.base_url))
    conf = ml_settings(ml_callback_max_attempts=3)           # for create_app / CallbackSender

The fixtures that hand these out (`ml_server`, `receiver`, `media_server`) are in
tests/ml_service/conftest.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ecg_protocol import sign_headers
from ml_server.config import MLSettings
from tests.support import ml_requests
from tests.support.local_servers import Received
from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command

SECRET = "ml-service-test-secret"
MAX_BYTES = 3_000_000

# Small limits and fast retries so every failure path finishes in seconds.
SERVER_ENV = {
    "WEBHOOK_SECRET_KEY": SECRET,
    "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
    "ML_MAX_DOWNLOAD_BYTES": str(MAX_BYTES),
    "ML_DOWNLOAD_TIMEOUT_S": "60",
    "ML_DOWNLOAD_STALL_TIMEOUT_S": "1.5",
    "ML_CALLBACK_MAX_ATTEMPTS": "5",
    "ML_CALLBACK_BACKOFF_BASE_S": "0.1",
    "ML_CALLBACK_BACKOFF_MAX_S": "1",
    "ML_CALLBACK_TIMEOUT_S": "5",
    "ML_WORKERS": "1",
}


@dataclass
class MLServer:
    """A running ML server process and the temp dir its jobs use."""

    proc: ManagedProcess
    base_url: str
    tmp_dir: Path

    def post(self, payload: dict[str, Any], *, sign: bool = True) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers.update(sign_headers(body, SECRET))
        return httpx.post(f"{self.base_url}/process", content=body, headers=headers, timeout=10)

    def get(self, job_id: str) -> httpx.Response:
        """Signed `GET /jobs/{job_id}`."""
        return ml_requests.get_job(self.base_url, job_id, SECRET)

    def cancel(self, job_id: str) -> httpx.Response:
        """Signed `DELETE /jobs/{job_id}`."""
        return ml_requests.cancel_job(self.base_url, job_id, SECRET)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(job_id)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def leftovers(self) -> list[str]:
        """Job temp dirs still on disk (there must be none once a job has ended)."""
        return sorted(p.name for p in self.tmp_dir.glob("ecg-ml-*"))


def new_job_id() -> str:
    return str(uuid.uuid4())


def request_body(job_id: str, video_url: str, receiver_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "video_url": video_url,
        "fastapi_base_url": receiver_url,
        "language": "en",
        **extra,
    }


@contextmanager
def start_ml_server(root: Path, tmp_dir: Path) -> Iterator[MLServer]:
    """`ecg ml-server` as a real process on a free port, healthy before it is handed out."""
    port = free_port()
    env = {**SERVER_ENV, "ECG_DATA_DIR": str(root / "data"), "TMPDIR": str(tmp_dir)}
    proc = ManagedProcess(
        ecg_command("ml-server", "--port", str(port)),
        env=env,
        log_path=root / "ml-server.log",
        name="ml-server",
    )
    with proc:
        base = f"http://127.0.0.1:{port}"
        proc.wait_http_ok(f"{base}/health", timeout_s=60)
        yield MLServer(proc=proc, base_url=base, tmp_dir=tmp_dir)


def ml_settings(**overrides: object) -> MLSettings:
    """In-process settings: this module's secret, the local media server allowed, and small
    limits so every failure path finishes in seconds."""
    values: dict[str, object] = {
        "webhook_secret_key": SECRET,
        "ml_allowed_private_hosts": "127.0.0.1",
        "ml_callback_max_attempts": 2,
        "ml_callback_backoff_base_s": 0.01,
        "ml_download_stall_timeout_s": 1.0,
        **overrides,
    }
    return MLSettings.model_validate(values)


def independent_check(request: Received, secret: str) -> None:
    """The signature of a received callback (docs/protocol.md), verified from scratch with
    hmac, not with ecg_protocol: both the hex X-Signature-256 and the Standard Webhooks one."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    key = secret.encode()
    expected_hex = "sha256=" + hmac.new(key, request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-signature-256"], expected_hex)
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(ts)) <= 300
    signed = msg_id.encode() + b"." + ts.encode() + b"." + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())
