"""The real `ecg ml-server` process: API contract, bad inputs, retries, cancel, idempotency.

One server process for the session (models load once); jobs run one at a time (ML_WORKERS=1),
so each test waits for its own job to end before the next starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ecg_protocol import AnalysisResult, sign_headers
from tests.support import media
from tests.support.local_servers import CallbackReceiver, MediaServer, Received
from tests.support.ml_service import SECRET, MLServer, independent_check, new_job_id, request_body
from tests.support.net import free_port
from tests.support.procs import wait_for

WORD_KEYS = {"word", "start", "end", "speaker_id", "volume_db", "pitch_hz", "probability"}


def settled(server: MLServer, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """The job record once it is final and its final callback attempts are over."""
    record: dict[str, Any] = {}

    def done() -> bool:
        nonlocal record
        record = server.job(job_id)
        final = record["status"] in ("completed", "failed", "cancelled")
        return final and bool(record["callback_settled"])

    server.proc.wait_until(done, timeout_s=timeout_s, what=f"job {job_id} to settle")
    return record


def check_callbacks(receiver: CallbackReceiver, job_id: str) -> list[Received]:
    """Every callback is signed (independent check), progress only rises, one final, last."""
    calls = receiver.for_job(job_id)
    for call in calls:
        independent_check(call, SECRET)
    accepted = [c for c in calls if c.answered < 300]
    progress = [c.json["progress"] for c in accepted]
    assert progress == sorted(progress), progress
    finals = receiver.finals(job_id)
    assert len(finals) == 1, [c.json for c in finals]
    assert accepted[-1] is finals[0]
    return calls


# --------------------------------------------------------------------------- API contract


def test_health(ml_server: MLServer) -> None:
    body = httpx.get(f"{ml_server.base_url}/health", timeout=5).json()
    assert body["status"] == "ok" and body["message"] == "ML Server is running"
    assert body["workers"] == 1 and isinstance(body["queue_depth"], int)
    assert {"models_loaded", "version"} <= set(body)
    wait_for(
        lambda: bool(httpx.get(f"{ml_server.base_url}/health", timeout=5).json()["models_loaded"]),
        timeout_s=90,
        what="models to load",
        interval_s=0.5,
    )


@pytest.mark.parametrize("how", ["unsigned", "wrong-secret", "tampered", "stale"])
def test_unsigned_process_is_401(ml_server: MLServer, receiver: CallbackReceiver, how: str) -> None:
    job_id = new_job_id()
    body = json.dumps(request_body(job_id, "http://127.0.0.1:1/v.mp4", receiver.base_url)).encode()
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if how == "wrong-secret":
        headers.update(sign_headers(body, "not-the-secret"))
    elif how == "tampered":
        headers.update(sign_headers(body, SECRET))
        body = body.replace(b'"en"', b'"de"')
    elif how == "stale":
        headers.update(sign_headers(body, SECRET, timestamp=int(time.time()) - 3600))
    response = httpx.post(f"{ml_server.base_url}/process", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error_code"] == "INVALID_SIGNATURE"
    assert ml_server.get(job_id).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"job_id": "x"},
        {"job_id": "", "video_url": "http://a/b", "fastapi_base_url": "http://c"},
        {
            "job_id": "x",
            "video_url": "http://a/b",
            "fastapi_base_url": "http://c",
            "options": {"min_speakers": 3, "max_speakers": 2},
        },
        [],
        "not json",
    ],
)
def test_invalid_body_is_422(ml_server: MLServer, payload: Any) -> None:
    body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    response = httpx.post(f"{ml_server.base_url}/process", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("video_url", "ftp://127.0.0.1/v.mp4"),
        ("video_url", "http://10.0.0.1/v.mp4"),
        ("video_url", "http://[::1]/v.mp4"),
        ("fastapi_base_url", "http://169.254.169.254"),
    ],
)
def test_forbidden_url_is_400(
    ml_server: MLServer, receiver: CallbackReceiver, field: str, url: str
) -> None:
    job_id = new_job_id()
    payload = request_body(job_id, "http://127.0.0.1:1/v.mp4", receiver.base_url)
    payload[field] = url
    response = ml_server.post(payload)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "URL_NOT_ALLOWED"
    assert field in response.json()["detail"]
    assert ml_server.get(job_id).status_code == 404


def test_unknown_job(ml_server: MLServer) -> None:
    assert ml_server.get("nope").status_code == 404
    assert ml_server.cancel("nope").status_code == 404


# --------------------------------------------------------------------------- bad inputs


BAD_INPUTS: dict[str, tuple[Callable[[MediaServer], str], str]] = {
    "not-media": (lambda m: m.add("notes.mp4", media.not_media()), "UNSUPPORTED_MEDIA"),
    "no-audio": (lambda m: m.add("silent.mp4", media.no_audio_video()), "NO_AUDIO_TRACK"),
    "404": (lambda m: m.url("/missing"), "DOWNLOAD_ERROR"),
    "declared-too-large": (lambda m: m.url("/huge"), "FILE_TOO_LARGE"),
    "streamed-too-large": (lambda m: m.url("/endless"), "FILE_TOO_LARGE"),
    "private-redirect": (
        lambda m: m.url("/redirect?to=http://169.254.169.254/latest/meta-data/"),
        "URL_NOT_ALLOWED",
    ),
    "stall": (lambda m: m.url("/stall"), "DOWNLOAD_TIMEOUT"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_as_one_failed_callback(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer, case: str
) -> None:
    make_url, code = BAD_INPUTS[case]
    job_id = new_job_id()
    response = ml_server.post(request_body(job_id, make_url(media_server), receiver.base_url))
    assert response.status_code == 202, response.text
    assert response.json() == {"job_id": job_id, "status": "queued"}
    final = receiver.wait_final(job_id, timeout_s=90).json
    assert final["status"] == "failed" and final["error_code"] == code, final
    assert final["error_message"] and final["result"] is None
    record = settled(ml_server, job_id)
    assert record["status"] == "failed" and record["error_code"] == code
    assert record["callback_delivered"] is True
    check_callbacks(receiver, job_id)
    assert ml_server.leftovers() == []


# --------------------------------------------------------------------------- behaviour


def test_same_job_id_twice_does_the_work_once(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer
) -> None:
    job_id = new_job_id()
    path = f"/trickle?s=1.5&id={job_id}"
    payload = request_body(job_id, media_server.url(path), receiver.base_url)
    assert ml_server.post(payload).status_code == 202
    second = ml_server.post(payload)
    assert second.status_code == 202
    assert second.json()["status"] in ("queued", "processing")
    receiver.wait_final(job_id, timeout_s=60)
    record = settled(ml_server, job_id)
    third = ml_server.post(payload)
    assert third.status_code == 202 and third.json()["status"] == record["status"]
    assert media_server.hits.count(path) == 1
    check_callbacks(receiver, job_id)


def test_cancel_running_and_queued_while_health_answers(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer
) -> None:
    running, queued = new_job_id(), new_job_id()
    slow = media_server.url(f"/trickle?s=30&id={running}")
    assert ml_server.post(request_body(running, slow, receiver.base_url)).status_code == 202
    wait_for(
        lambda: ml_server.job(running)["status"] == "processing",
        timeout_s=60,
        what="the slow job to start",
    )
    assert ml_server.post(request_body(queued, slow, receiver.base_url)).status_code == 202

    # /health answers promptly while the worker is busy.
    t0 = time.monotonic()
    health = httpx.get(f"{ml_server.base_url}/health", timeout=5).json()
    assert time.monotonic() - t0 < 1.0
    assert health["running"] == 1 and health["queue_depth"] == 1

    answer = ml_server.cancel(queued)
    assert answer.status_code == 202 and answer.json()["status"] == "cancelled"
    assert ml_server.job(queued)["status"] == "cancelled"

    answer = ml_server.cancel(running)
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    for job_id in (running, queued):
        final = receiver.wait_final(job_id, timeout_s=20).json
        assert final["status"] == "failed" and final["error_code"] == "CANCELLED"
        record = settled(ml_server, job_id)
        assert record["status"] == "cancelled" and record["error_code"] == "CANCELLED"
        check_callbacks(receiver, job_id)
    assert ml_server.cancel(running).status_code == 409
    assert ml_server.leftovers() == []


def test_receiver_down_leaves_the_outcome_fetchable(
    ml_server: MLServer, media_server: MediaServer
) -> None:
    job_id = new_job_id()
    down = f"http://127.0.0.1:{free_port()}"
    assert (
        ml_server.post(request_body(job_id, media_server.url("/missing"), down)).status_code == 202
    )
    wait_for(
        lambda: ml_server.job(job_id)["status"] == "failed", timeout_s=30, what="the job to fail"
    )
    # 5 attempts with backoff ≤ 1 s, then callback_delivered stays false and the record stays.
    record = settled(ml_server, job_id)
    assert record["error_code"] == "DOWNLOAD_ERROR" and record["callback_delivered"] is False


# --------------------------------------------------------------------------- real pipeline


def test_happy_path_with_retries_then_fetchable_when_receiver_down(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer
) -> None:
    clip = media.dialogue("mp4")
    url = media_server.add("dialogue.mp4", clip.path)
    receiver.fail_finals = 3  # 500, 500, 500, then 200
    job_id = new_job_id()
    payload = request_body(job_id, url, receiver.base_url, filename="dialogue.mp4")
    assert ml_server.post(payload).status_code == 202
    final = receiver.wait_final(job_id, timeout_s=240)
    body = final.json
    assert body["status"] == "completed" and body["progress"] == 100
    result = AnalysisResult.model_validate(body["result"])
    assert result.metadata.filename == "dialogue.mp4"
    assert result.segments and result.metadata.unique_speakers == 2
    text = " ".join(segment.text for segment in result.segments).lower()
    assert "good morning" in text and "search page" in text
    assert "download" in result.metadata.processing_time
    for segment in body["result"]["segments"]:
        assert {"start_time", "end_time", "speaker", "text", "words"} <= set(segment)
        for word in segment["words"]:
            assert set(word) >= WORD_KEYS

    calls = check_callbacks(receiver, job_id)
    completed = [c for c in calls if c.json["status"] == "completed"]
    assert [c.answered for c in completed] == [500, 500, 500, 200]
    assert len({c.headers["webhook-id"] for c in completed}) == 1
    stages = [c.json["stage"] for c in calls if c.json["status"] == "processing"]
    assert stages[0] == "download" and "transcribe" in stages
    record = settled(ml_server, job_id)
    assert record["status"] == "completed" and record["callback_delivered"] is True
    assert (
        record["result"]["segments"][0]["start_time"] == body["result"]["segments"][0]["start_time"]
    )
    assert ml_server.leftovers() == []

    # The same media with the backend down: the result waits at GET /jobs/{id}.
    job_id = new_job_id()
    down = f"http://127.0.0.1:{free_port()}"
    assert ml_server.post(request_body(job_id, url, down)).status_code == 202
    record = settled(ml_server, job_id, timeout_s=240)
    assert record["status"] == "completed" and record["callback_delivered"] is False
    assert AnalysisResult.model_validate(record["result"]).segments

    metrics = httpx.get(f"{ml_server.base_url}/metrics").text
    assert 'ml_jobs_total{error_code="",outcome="completed"}' in metrics
    assert "ml_queue_depth" in metrics and "ml_stage_duration_seconds_bucket" in metrics
