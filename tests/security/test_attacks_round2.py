"""The attacks of issue 23 kept as regressions, against a real `ecg backend` process (sign-in
required, PostgreSQL, SeaweedFS S3; the ML server is the test fake, in this process).

Nothing is read before it is authorised (`/v1/audio/*` checks the token and the rate limit
before the upload), names and words cannot break caption files, absurd times are refused at the
schema, and the page and API carry the headers a browser expects.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from ecg_protocol import sign_headers
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.pg import create_database, drop_database
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.raw_http import MB, raw_post
from tests.support.seaweed import SeaweedS3

SECRET = "round-two-secret"
JWT_SECRET = "round-two-jwt-secret-0123456789abcdef"
WEBHOOK = "/api/upload-video/result"
TRANSCRIBE = "/v1/audio/transcriptions"


@dataclass
class Backend:
    """The backend under attack (sign-in required) and the fake ML server behind it."""

    proc: ManagedProcess
    port: int
    fake: FakeMLServer
    _ips: Iterator[int] = field(default_factory=lambda: iter(range(1, 250)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_ip(self) -> str:
        """A client address of the test's own (the rate limit counts per address)."""
        return f"203.0.113.{next(self._ips)}"


def token(sub: str, *, lifetime_s: int | None = 600, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": sub, **claims}
    if lifetime_s is not None:
        body["exp"] = int(time.time()) + lifetime_s
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def auth(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp("round2")
    pg_url, db_name = create_database("ecg_round2")
    port = free_port()
    fake = FakeMLServer(secret=SECRET).start()
    env = {
        "DATABASE_URL": pg_url,
        "S3_BUCKET_NAME": seaweed.buckets[0],
        "S3_ENDPOINT_URL": seaweed.endpoint,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
        "MODEL_SERVER_URL": fake.url,
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET_KEY": SECRET,
        "JWT_SECRET": JWT_SECRET,
        "ALLOW_ANONYMOUS": "false",
        "ECG_DATA_DIR": str(root / "data"),
        "RATE_LIMIT_PROCESS": "2/minute",
        "TRUST_FORWARDED_FOR": "true",
        "SYNC_WAIT_TIMEOUT_S": "5",
        "DISPATCH_POLL_INTERVAL_S": "0.2",
    }
    proc = ManagedProcess(
        ecg_command("backend", "--port", str(port)),
        env=env,
        log_path=root / "backend.log",
        name="backend",
    ).start()
    try:
        proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
        yield Backend(proc=proc, port=port, fake=fake)
    finally:
        proc.stop()
        fake.stop()
        drop_database(db_name)


# ------------------------------------------------------------ /v1: authorised before it is read

MULTIPART = "multipart/form-data; boundary=ecg-round-two"


def test_v1_bad_token_is_refused_before_the_upload(backend: Backend) -> None:
    """Issue 23 #2: 400 MB with a bad token was read whole (spooled to the temp dir), then 401."""
    for bad in ("Bearer not-a-token", f"Bearer {token('alice', lifetime_s=None)}", ""):
        headers = {"Authorization": bad} if bad else {}
        status, sent = raw_post(
            backend.port, TRANSCRIBE, headers=headers, size=300 * MB, chunked=False,
            content_type=MULTIPART,
        )  # fmt: skip
        assert status == 401, (bad, status)
        assert sent < 50 * MB, f"{sent / MB:.0f} MB went out before the 401"


def test_v1_rate_limit_is_counted_before_the_upload(backend: Backend) -> None:
    """Issue 23 #2: the rate limit too was checked after the whole upload had been read."""
    ip = backend.client_ip()
    headers = {**auth("alice"), "X-Forwarded-For": ip}
    for _ in range(2):  # RATE_LIMIT_PROCESS=2/minute; an empty file is refused after counting
        r = httpx.post(
            f"{backend.url}{TRANSCRIBE}",
            headers=headers,
            files={"file": ("a.wav", b"", "audio/wav")},
            data={"model": "whisper-1"},
            timeout=30,
        )
        assert r.status_code == 400, r.text
    status, sent = raw_post(
        backend.port, TRANSCRIBE, headers=headers, size=300 * MB, chunked=False,
        content_type=MULTIPART,
    )  # fmt: skip
    assert status == 429
    assert sent < 50 * MB, f"{sent / MB:.0f} MB went out before the 429"


def test_an_empty_file_is_refused_by_v1_as_by_request_process(backend: Backend) -> None:
    """Issue 23 #5: an empty file through /v1 created a job; request-process refuses it (400)."""
    headers = {**auth("bob"), "X-Forwarded-For": backend.client_ip()}
    r = httpx.post(
        f"{backend.url}{TRANSCRIBE}",
        headers=headers,
        files={"file": ("empty.wav", b"", "audio/wav")},
        data={"model": "whisper-1"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert "empty" in r.json()["error"]["message"]
    listed = httpx.get(f"{backend.url}/api/jobs", headers=auth("bob"), timeout=10)
    assert listed.status_code == 200 and listed.json()["jobs"] == [], listed.text

    key = _upload(backend, b"", user="bob")
    r = httpx.post(
        f"{backend.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth("bob"), "X-Forwarded-For": backend.client_ip()},
        timeout=10,
    )
    assert r.status_code == 400 and "empty" in r.json()["detail"], r.text


# ------------------------------------------------------------------------------- helpers


def _upload(backend: Backend, data: bytes, *, user: str, name: str = "clip.wav") -> str:
    """generate-url then PUT `data`; the file key."""
    r = httpx.post(
        f"{backend.url}/api/upload-video/generate-url",
        json={"filename": name, "content_type": "audio/wav"},
        headers=auth(user),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    put = httpx.put(
        r.json()["presigned_url"], content=data, headers={"Content-Type": "audio/wav"}, timeout=30
    )
    assert put.status_code == 200, put.text
    key: str = r.json()["file_key"]
    return key


def _start_job(backend: Backend, *, user: str, data: bytes = b"\x00" * 1000) -> str:
    """A dispatched job of `user`'s; its id."""
    key = _upload(backend, data, user=user)
    r = httpx.post(
        f"{backend.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth(user), "X-Forwarded-For": backend.client_ip()},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    job_id: str = r.json()["job_id"]
    wait_for(lambda: bool(backend.fake.process_requests(job_id)), timeout_s=20, what="dispatch")
    return job_id


def _callback(backend: Backend, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    return httpx.post(f"{backend.url}{WEBHOOK}", content=body, headers=headers, timeout=10)


def _unique() -> str:
    return f"u{uuid.uuid4().hex[:10]}"
