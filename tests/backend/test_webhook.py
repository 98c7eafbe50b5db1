"""The result webhook: mandatory signature, replay protection, forward-only state machine,
normalization, misuse detection — every bad callback is a clear 4xx and changes nothing."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select

from app.models.job import Job
from ecg_protocol import sign_headers
from ecg_protocol.signing import hex_signature
from tests.support.backend import SECRET, Backend
from tests.support.results import completed, processing


async def job_row(b: Backend, job_id: str) -> Job:
    async with b.ctx.session_factory() as s:
        return (await s.execute(select(Job).where(Job.job_id == uuid.UUID(job_id)))).scalar_one()


async def test_progress_then_completed_normalized(backend: Backend) -> None:
    job_id = await backend.start_job()
    r = await backend.callback(processing(job_id, 30))
    assert r.status_code == 200 and r.json()["status"] == "received"
    s = (await backend.status(job_id)).json()
    assert (s["status"], s["progress"], s["stage"]) == ("processing", 30, "transcribe")
    assert (await job_row(backend, job_id)).last_event_at is not None

    r = await backend.callback(completed(job_id))
    assert r.status_code == 200
    s = (await backend.status(job_id)).json()
    assert s["status"] == "completed" and s["progress"] == 100
    seg = s["result"]["segments"][0]
    assert seg["start"] == 4.908 and seg["end"] == 8.754
    assert "start_time" not in seg and "end_time" not in seg
    assert set(seg["words"][0]) >= {
        "word",
        "start",
        "end",
        "speaker_id",
        "volume_db",
        "pitch_hz",
        "probability",
    }


async def test_failed_callback_records_code(backend: Backend) -> None:
    job_id = await backend.start_job()
    r = await backend.callback(
        {
            "job_id": job_id,
            "status": "failed",
            "error_code": "NO_AUDIO_TRACK",
            "error_message": "no audio",
        }
    )
    assert r.status_code == 200
    s = (await backend.status(job_id)).json()
    assert (s["status"], s["error_code"], s["error_message"]) == (
        "failed",
        "NO_AUDIO_TRACK",
        "no audio",
    )


async def test_out_of_order_progress_never_goes_down(backend: Backend) -> None:
    job_id = await backend.start_job()
    await backend.callback(processing(job_id, 60, "diarize"))
    r = await backend.callback(processing(job_id, 20, "download"))
    assert r.status_code == 200
    s = (await backend.status(job_id)).json()
    assert (s["progress"], s["stage"]) == (60, "diarize")


async def test_callbacks_after_completion_change_nothing(backend: Backend) -> None:
    job_id = await backend.start_job()
    assert (await backend.callback(completed(job_id))).status_code == 200
    before = (await backend.status(job_id)).json()
    r = await backend.callback(processing(job_id, 50))
    assert r.status_code == 200 and r.json()["status"] == "already_completed"
    r = await backend.callback(completed(job_id))
    assert r.json()["status"] == "already_completed"
    r = await backend.callback({"job_id": job_id, "status": "failed", "error_code": "X"})
    assert r.json()["status"] == "already_completed"
    assert (await backend.status(job_id)).json() == before


async def test_failed_is_final(backend: Backend) -> None:
    job_id = await backend.start_job()
    await backend.callback({"job_id": job_id, "status": "failed", "error_code": "DOWNLOAD_ERROR"})
    r = await backend.callback(completed(job_id))
    assert r.status_code == 200 and r.json()["status"] == "already_failed"
    assert (await backend.status(job_id)).json()["status"] == "failed"


async def test_replayed_webhook_id_is_a_duplicate(backend: Backend) -> None:
    job_id = await backend.start_job()
    body = json.dumps(processing(job_id, 40)).encode()
    headers = {**sign_headers(body, SECRET, msg_id="msg_fixed"), "Content-Type": "application/json"}
    first = await backend.client.post("/api/upload-video/result", content=body, headers=headers)
    assert first.json()["status"] == "received"
    again = await backend.client.post("/api/upload-video/result", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # A different body under a used id is a duplicate too (the id names the message).
    r = await backend.callback(processing(job_id, 90), msg_id="msg_fixed")
    assert r.json()["status"] == "duplicate"
    assert (await backend.status(job_id)).json()["progress"] == 40


@pytest.mark.parametrize(
    "case", ["unsigned", "bad_hex", "bad_std", "stale", "future", "incomplete", "wrong_secret"]
)
async def test_unverified_callbacks_are_401(backend: Backend, case: str) -> None:
    job_id = await backend.start_job()
    body = json.dumps(processing(job_id, 50)).encode()
    now = int(time.time())
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if case == "bad_hex":
        headers["X-Signature-256"] = "sha256=" + "0" * 64
    elif case == "bad_std":
        headers.update(sign_headers(body, SECRET))
        headers["webhook-signature"] = "v1,AAAA"
        del headers["X-Signature-256"]
    elif case == "stale":
        headers.update(sign_headers(body, SECRET, timestamp=now - 3600))
    elif case == "future":
        headers.update(sign_headers(body, SECRET, timestamp=now + 3600))
    elif case == "incomplete":
        headers.update(sign_headers(body, SECRET))
        del headers["webhook-timestamp"]
    elif case == "wrong_secret":
        headers.update(sign_headers(body, "not-the-secret"))
    r = await backend.client.post("/api/upload-video/result", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "INVALID_SIGNATURE" and r.json()["detail"]
    assert (await backend.status(job_id)).json()["progress"] == 0


async def test_tampered_body_is_401(sqlite_backend: Backend) -> None:
    job_id = await sqlite_backend.start_job()
    body = json.dumps(processing(job_id, 50)).encode()
    headers = sign_headers(body, SECRET)
    r = await sqlite_backend.client.post(
        "/api/upload-video/result", content=body.replace(b"50", b"99"), headers=headers
    )
    assert r.status_code == 401


async def test_guide_only_header_refused_unless_legacy_allowed(sqlite_backend: Backend) -> None:
    """Strict by default; WEBHOOK_ALLOW_LEGACY_SIGNATURE lets a guide-era ML server in."""
    job_id = await sqlite_backend.start_job()
    body = json.dumps(processing(job_id, 10)).encode()
    headers = {"X-Signature-256": hex_signature(body, SECRET)}
    r = await sqlite_backend.client.post("/api/upload-video/result", content=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] == "strict_mode"
    assert (await sqlite_backend.status(job_id)).json()["progress"] == 0
    sqlite_backend.ctx.settings.webhook_allow_legacy_signature = True
    r = await sqlite_backend.client.post("/api/upload-video/result", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert (await sqlite_backend.status(job_id)).json()["progress"] == 10


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'"x"',
        b'{"job_id": "x"}',
        b'{"job_id": "j", "status": "exploded"}',
        b'{"job_id": "j", "status": "processing", "progress": 250}',
        b'{"job_id": "j", "status": "completed", "progress": 100}',
        b'{"job_id": "j", "status": "failed"}',
        b'{"job_id": "j", "status": "completed", "result": {"segments": [{"start": "soon"}]}}',
    ],
)
async def test_malformed_signed_bodies_are_4xx(sqlite_backend: Backend, body: bytes) -> None:
    r = await sqlite_backend.callback(body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["detail"]


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
async def test_unknown_job_is_404(
    backend: Backend, job_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = await backend.callback(processing(job_id, 10))
    assert r.status_code == 404
    assert any(
        rec.levelname == "WARNING" and "unknown" in rec.getMessage() for rec in caplog.records
    )


async def test_unknown_job_does_not_burn_the_webhook_id(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.callback(processing(str(uuid.uuid4()), 10), msg_id="msg_x")
    assert r.status_code == 404
    job_id = await sqlite_backend.start_job()
    r = await sqlite_backend.callback(processing(job_id, 10), msg_id="msg_y")
    assert r.json()["status"] == "received"


async def test_frontend_misuse_node_user_agent(sqlite_backend: Backend) -> None:
    job_id = await sqlite_backend.start_job()
    r = await sqlite_backend.client.post(
        "/api/upload-video/result", json={"job_id": job_id}, headers={"User-Agent": "node"}
    )
    assert r.status_code == 400
    assert r.json()["correct_endpoint"] == "GET /api/upload-video/status/{job_id}"


async def test_frontend_misuse_status_query_body(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.post(
        "/api/upload-video/result", json={"job_id": str(uuid.uuid4())}
    )
    assert r.status_code == 400
    assert r.json()["correct_endpoint"] == "GET /api/upload-video/status/{job_id}"
    # A signed status query (a confused but authenticated caller) gets the same hint.
    r = await sqlite_backend.callback({"job_id": str(uuid.uuid4())})
    assert r.status_code == 400 and "correct_endpoint" in r.json()


async def test_metrics_count_outcomes(sqlite_backend: Backend) -> None:
    job_id = await sqlite_backend.start_job()
    await sqlite_backend.callback(completed(job_id))
    text = (await sqlite_backend.client.get("/metrics")).text
    assert 'ecg_callbacks_total{outcome="applied"}' in text
    assert 'ecg_jobs_finished_total{code="",status="completed"}' in text
    assert "ecg_job_processing_seconds_count" in text
    assert "ecg_job_success_rate" in text and "ecg_job_error_rate" in text
    assert "ecg_ml_requests_total" in text


async def test_oversize_callback_body_is_413(sqlite_backend: Backend) -> None:
    sqlite_backend.ctx.settings.webhook_max_bytes = 1000
    job_id = await sqlite_backend.start_job()
    payload = {**processing(job_id, 10), "message": "x" * 2000}
    r = await sqlite_backend.callback(payload)
    assert r.status_code == 413
    assert (await sqlite_backend.status(job_id)).json()["progress"] == 0
