"""The attacks of issue 9 on the backend, kept as regressions against a real `ecg backend`
process on real PostgreSQL and SeaweedFS S3 (the ML server is the test fake, in this process).

Each test is one attack as it was run: parallel 60 MB unsigned callbacks (memory), a body that
streams 200 MB, 2,000 nested `[`, a captured callback replayed with its timestamp headers
dropped, a signed NaN result, anonymous listing, a deleted job's video processed again, 300
slowloris connections, and a job whose ML server never comes back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecg_protocol import sign_headers
from ecg_serving.server import HEADER_TIMEOUT_S
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.pg import create_database, drop_database
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.raw_http import MB, raw_post
from tests.support.seaweed import SeaweedS3
from tests.support.slow_clients import (
    close_all,
    count_open,
    open_partial_requests,
    wait_all_closed,
)
from tests.support.stack import Stack

SECRET = "attack-suite-secret"
WEBHOOK = "/api/upload-video/result"
# Short enough for a test, long enough that a dispatch always lands first.
UNREACHABLE_DEADLINE_S = 2.0


@dataclass
class Target:
    """The backend under attack and the fake ML server behind it."""

    proc: ManagedProcess
    port: int
    fake: FakeMLServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def memory_kb(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak since start) of the backend process, in kB."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields

    def reset_peak(self) -> None:
        """Start VmHWM over from the current RSS (Linux: `clear_refs` 5), so a peak measured
        after this is this test's, not an earlier one's."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def log_has_traceback(self) -> bool:
        return "Traceback" in self.proc.log_text()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("attacks")
    pg_url, db_name = create_database("ecg_attacks")
    port = free_port()
    fake = FakeMLServer(secret=SECRET).start()
    env = {
        "DATABASE_URL": pg_url,
        **seaweed.settings_env(),
        "MODEL_SERVER_URL": fake.url,
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET_KEY": SECRET,
        "ECG_DATA_DIR": str(root / "data"),
        "RATE_LIMIT_PROCESS": "10000/minute",
        "DISPATCH_POLL_INTERVAL_S": "0.2",
        "RECONCILE_INTERVAL_S": "0.5",
        "ML_API_TIMEOUT": "2",
        "ML_UNREACHABLE_DEADLINE_S": str(UNREACHABLE_DEADLINE_S),
        "ML_UNREACHABLE_DURATION_FACTOR": "1",
    }
    proc = ManagedProcess(
        ecg_command("backend", "--port", str(port)),
        env=env,
        log_path=root / "backend.log",
        name="backend",
    ).start()
    try:
        proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
        yield Target(proc=proc, port=port, fake=fake)
    finally:
        proc.stop()
        fake.stop()
        drop_database(db_name)


# ---------------------------------------------------------------------------- memory


def test_parallel_60mb_unsigned_callbacks_do_not_grow_memory(target: Target) -> None:
    """Issue 9 #6: 10 × 60 MB unsigned POSTs took the backend from 103 to 792 MB RSS."""
    before = target.memory_kb()

    def attack(i: int) -> tuple[int | None, int]:
        return raw_post(target.port, WEBHOOK, headers={}, size=60 * MB, chunked=i % 2 == 1)

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attack, range(10)))
    assert [status for status, _ in outcomes] == [401] * 10, outcomes
    after = target.memory_kb()
    grown_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    assert grown_mb < 50, f"peak RSS grew {grown_mb:.0f} MB ({before} → {after})"
    assert httpx.get(f"{target.url}/health", timeout=10).status_code == 200


def _forged(signature: str, *, msg_id: str | None = None, age_s: int = 0) -> dict[str, str]:
    """Complete webhook-* headers carrying `signature` (never a valid one)."""
    return {
        "webhook-id": msg_id or f"msg_{uuid.uuid4().hex}",
        "webhook-timestamp": str(int(time.time()) - age_s),
        "webhook-signature": signature,
    }


def _flood(target: Target, headers_for: Callable[[int], dict[str, str]]) -> list[int | None]:
    """10 parallel 60 MB posts (half chunked); their statuses. Fails if peak RSS grew 50 MB."""
    target.reset_peak()
    before = target.memory_kb()

    def attack(i: int) -> tuple[int | None, int]:
        return raw_post(
            target.port, WEBHOOK, headers=headers_for(i), size=60 * MB, chunked=i % 2 == 1
        )

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attack, range(10)))
    after = target.memory_kb()
    grown_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    assert grown_mb < 50, f"peak RSS grew {grown_mb:.0f} MB ({before} → {after}): {outcomes}"
    return [status for status, _ in outcomes]


@pytest.mark.parametrize(
    "forged",
    [
        lambda i: _forged("v1,AAAA"),
        lambda i: _forged("v1," + base64.b64encode(b"x" * 31).decode()),
        lambda i: {**sign_headers(b"", SECRET), "X-Signature-256": "sha256=AAAA"},
    ],
    ids=["short-v1", "31-byte-digest", "malformed-hex-beside"],
)
def test_forged_signature_headers_are_refused_before_the_body(
    target: Target, forged: Callable[[int], dict[str, str]]
) -> None:
    """Issue 23 #1: 10 × 60 MB with `webhook-signature: v1,AAAA` took RSS from 107 to 733 MB
    (presence was all that was checked before the whole body was read)."""
    assert _flood(target, forged) == [401] * 10


def test_a_well_formed_forged_signature_is_verified_while_streaming(target: Target) -> None:
    """Issue 23 #1: a signature that can only be settled by the body is checked chunk by chunk;
    the unverified bytes never pile up in memory."""
    digest = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    assert _flood(target, lambda i: _forged("v1," + digest)) == [401] * 10


def test_a_seen_webhook_id_is_answered_before_the_body(target: Target) -> None:
    """Issue 23 #1: a webhook-id already applied is a duplicate whatever the body, so the body
    (here 60 MB, forged) is not read."""
    job_id = _start_job(target, b"\x00" * 1000)
    body = json.dumps({"job_id": job_id, "status": "processing", "progress": 10}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    first = _callback(target, body, sign_headers(body, SECRET, msg_id=msg_id))
    assert first.json()["status"] == "received", first.text
    digest = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    statuses = _flood(target, lambda i: _forged("v1," + digest, msg_id=msg_id))
    assert statuses == [200] * 10
    status, sent = raw_post(
        target.port, WEBHOOK, headers=_forged("v1," + digest, msg_id=msg_id), size=60 * MB,
        chunked=False,
    )  # fmt: skip
    assert status == 200 and sent < 30 * MB, f"{sent / MB:.0f} MB went out before the answer"
    assert _status(target, job_id)["progress"] == 10


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200mb_callback_is_refused_at_the_limit(target: Target, chunked: bool) -> None:
    """With fresh signature headers the body must be read to be verified — but only up to
    WEBHOOK_MAX_BYTES (64 MB, the default): refused on the header, or the moment the stream
    passes it."""
    before = target.memory_kb()
    headers = sign_headers(b"", SECRET)  # fresh and complete; the signature is checked later
    status, sent = raw_post(target.port, WEBHOOK, headers=headers, size=200 * MB, chunked=chunked)
    assert status == 413
    assert sent < 100 * MB, f"{sent / MB:.0f} MB went out before the refusal"
    grown_mb = (target.memory_kb()["VmHWM"] - before["VmRSS"]) / 1024
    # Chunked, the limit's worth is read (and held while counted): at most 64 MB plus slack.
    assert grown_mb < (50 if not chunked else 64 + 50), f"peak RSS grew {grown_mb:.0f} MB"


# ---------------------------------------------------------------------------- malformed


def test_nested_json_is_4xx_and_logs_no_traceback(target: Target) -> None:
    """Issue 9 #7: 2,000 nested `[` (4 KB, unsigned) gave a 500 and a traceback per request."""
    body = b"[" * 2000
    routes = {
        WEBHOOK: 401,
        "/api/upload-video/generate-url": 422,
        "/api/upload-video/request-process": 422,
    }
    for path, expected in routes.items():
        r = httpx.post(f"{target.url}{path}", content=body, timeout=10)
        assert r.status_code == expected, (path, r.text)
    signed = httpx.post(
        f"{target.url}{WEBHOOK}",
        content=body,
        headers={"Content-Type": "application/json", **sign_headers(body, SECRET)},
        timeout=10,
    )
    assert signed.status_code == 422, signed.text
    assert not target.log_has_traceback(), target.proc.log_tail()


# ---------------------------------------------------------------------------- jobs


def _start_job(target: Target, data: bytes) -> str:
    return _start_job_with_key(target, data)[0]


def _start_job_with_key(
    target: Target, data: bytes, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    """Upload `data`, request processing, wait for the dispatch; (job id, file key)."""
    headers = headers or {}
    r = httpx.post(
        f"{target.url}/api/upload-video/generate-url",
        json={"filename": "clip.wav", "content_type": "audio/wav"},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    put = httpx.put(
        r.json()["presigned_url"], content=data, headers={"Content-Type": "audio/wav"}, timeout=30
    )
    assert put.status_code == 200, put.text
    key = r.json()["file_key"]
    started = httpx.post(
        f"{target.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers=headers,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    job_id: str = started.json()["job_id"]
    wait_for(lambda: bool(target.fake.process_requests(job_id)), timeout_s=20, what="dispatch")
    return job_id, key


def _status(target: Target, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{target.url}/api/upload-video/status/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _callback(target: Target, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{target.url}{WEBHOOK}", content=body, headers=headers, timeout=10)


def test_replay_with_timestamp_headers_dropped_is_refused(target: Target) -> None:
    """Issue 9 #4: an hour-old callback was accepted once its webhook-* headers were removed."""
    job_id = _start_job(target, b"\x00" * 1000)
    body = json.dumps({"job_id": job_id, "status": "processing", "progress": 50}).encode()
    captured = sign_headers(body, SECRET, timestamp=int(time.time()) - 3600)
    assert _callback(target, body, captured).json()["reason"] == "stale_timestamp"
    legacy_only = {"X-Signature-256": captured["X-Signature-256"]}
    r = _callback(target, body, legacy_only)
    assert r.status_code == 401 and r.json()["reason"] == "strict_mode"
    assert _status(target, job_id)["progress"] == 0


def test_signed_nan_result_is_refused_and_not_stored(target: Target) -> None:
    """Issue 9 #10: a signed result with NaN was stored and every export then answered 422."""
    job_id = _start_job(target, b"\x00" * 1000)
    result = {
        "metadata": {"duration": 2.0},
        "segments": [
            {"start_time": 0.0, "end_time": 1.0, "speaker": {"speaker_id": "SPEAKER_00"},
             "text": "hi", "words": [{"word": "hi", "start": 0.0, "end": 1.0, "pitch_hz": 0}]}
        ],
    }  # fmt: skip
    text = json.dumps({"job_id": job_id, "status": "completed", "result": result})
    body = text.replace('"pitch_hz": 0', '"pitch_hz": NaN').encode()
    r = _callback(target, body, {"Content-Type": "application/json", **sign_headers(body, SECRET)})
    assert r.status_code == 422, r.text
    status = _status(target, job_id)
    assert status["status"] != "completed" and status["result"] is None


def test_anonymous_jobs_are_unlisted(target: Target) -> None:
    """Issue 9 #5: GET /api/jobs from any client listed every anonymous job and its file key."""
    job_id = _start_job(target, b"\x00" * 1000)
    listed = httpx.get(f"{target.url}/api/jobs", timeout=10)
    assert listed.status_code == 200 and listed.json() == {"jobs": [], "count": 0}
    assert _status(target, job_id)["job_id"] == job_id  # the id still reaches it


def test_deleted_job_video_is_gone_from_s3(target: Target) -> None:
    """Issue 9 #8: deleting a job left its video in storage, processable again."""
    job_id, key = _start_job_with_key(target, b"\x00" * 1000)
    video_url = target.fake.jobs[job_id].request.video_url  # the ML server's presigned GET
    assert httpx.get(video_url, timeout=10).status_code == 200
    assert httpx.delete(f"{target.url}/api/jobs/{job_id}", timeout=10).status_code == 200
    assert httpx.get(video_url, timeout=10).status_code == 404
    again = httpx.post(
        f"{target.url}/api/upload-video/request-process", json={"fileKey": key}, timeout=10
    )
    assert again.status_code == 404 and again.json()["error"] == "FILE_NOT_FOUND", again.text


# ---------------------------------------------------------------------------- waiting


def test_job_fails_when_the_ml_server_never_comes_back(target: Target, tmp_path: Path) -> None:
    """Issue 9 #9: reconcile skipped such a job every round, forever."""
    clip = tmp_path / "clip.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=3", str(clip)],
        check=True,
    )
    job_id = _start_job(target, clip.read_bytes())
    target.fake.stop()
    try:
        wait_for(
            lambda: _status(target, job_id)["status"] == "failed",
            timeout_s=60,
            what="ML_SERVER_UNREACHABLE",
        )
    finally:
        target.fake.start()
    status = _status(target, job_id)
    assert status["error_code"] == "ML_SERVER_UNREACHABLE"
    # The deadline came from the media: 3 s × factor 1 is over the 2 s floor.
    assert "deadline 3s, 3.0s of media" in status["error_message"]


# ---------------------------------------------------------------------------- slowloris


def _slowloris(port: int, health_url: str) -> float:
    socks = open_partial_requests("127.0.0.1", port, 300)
    try:
        assert count_open(socks) > 250  # held at first: the deadline is a time, not a refusal
        assert httpx.get(health_url, timeout=10).status_code == 200  # others are still served
        return wait_all_closed(socks, timeout_s=HEADER_TIMEOUT_S + 30, trickle_every_s=1.0)
    finally:
        close_all(socks)


def test_300_slow_header_clients_are_cut_off_by_the_backend(target: Target) -> None:
    """Issue 9 #9: 300 clients sending partial headers held connections indefinitely."""
    took = _slowloris(target.port, f"{target.url}/health")
    assert took >= HEADER_TIMEOUT_S * 0.5
    assert httpx.get(f"{target.url}/health", timeout=10).status_code == 200


def test_300_slow_header_clients_are_cut_off_by_the_ml_server(sec_stack: Stack) -> None:
    """The ML server runs through the same runner (ecg_serving.server)."""
    _slowloris(sec_stack.ml_port, f"{sec_stack.ml_url}/health")
    assert httpx.get(f"{sec_stack.ml_url}/health", timeout=10).status_code == 200
