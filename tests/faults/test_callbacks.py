"""Duplicate, replayed, out-of-order and racing callbacks against two backend replicas on one
PostgreSQL: the final state is right and the completion is applied exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ecg_protocol import sign_headers
from tests.support.net import free_port
from tests.support.procs import wait_for
from tests.support.stack import SECRET, Stack

WEBHOOK = "/api/upload-video/result"


def _result(text: str) -> dict[str, Any]:
    return {
        "metadata": {
            "filename": "clip.wav",
            "duration": 5.5,
            "total_segments": 1,
            "unique_speakers": 1,
        },
        "segments": [
            {
                "start_time": 0.5,
                "end_time": 4.0,
                "speaker": {"speaker_id": "SPEAKER_00"},
                "text": text,
                "words": [
                    {
                        "word": text.split()[0],
                        "start": 0.5,
                        "end": 0.9,
                        "volume_db": -20.0,
                        "pitch_hz": 120.0,
                    }
                ],
            }
        ],
    }


def _signed(
    payload: dict[str, Any], *, msg_id: str | None = None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = sign_headers(body, SECRET, msg_id=msg_id, timestamp=timestamp)
    headers["Content-Type"] = "application/json"
    return body, headers


def _settled(
    stack: Stack, base: str, job_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The replica's status answer once `done` holds (bounded by a deadline)."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        nonlocal seen
        seen = stack.status(job_id, base_url=base)
        return done(seen)

    wait_for(check, timeout_s=10, what=f"{base} to show the settled state", interval_s=0.1)
    return seen


def _post(base: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(base + WEBHOOK, content=body, headers=headers, timeout=15)


def test_duplicate_replayed_out_of_order_and_racing_callbacks(stack: Stack) -> None:
    # No ML server: dispatch fails once and waits 10 min, so only our callbacks move the job.
    stack.backend_extra["DISPATCH_RETRY_DELAYS"] = "600"
    stack.backend_extra["MODEL_SERVER_URL"] = f"http://127.0.0.1:{free_port()}"
    stack.start_backend()
    second_port = free_port()
    stack.start_backend(port=second_port)
    a, b = stack.backend_url, f"http://127.0.0.1:{second_port}"
    job_id = stack.request_process(stack.upload())

    def progress(p: int, stage: str = "transcribe") -> dict[str, Any]:
        return {"job_id": job_id, "status": "processing", "progress": p, "stage": stage}

    # In order, then out of order: progress never goes down.
    for p in (30, 60):
        assert _post(a, *_signed(progress(p))).status_code == 200
    body60, headers60 = _signed(progress(70), msg_id="msg_fixed_70")
    assert _post(b, body60, headers60).json()["status"] == "received"
    assert _post(a, *_signed(progress(40, "vad"))).status_code == 200
    # Each replica caches open jobs' answers for STATUS_CACHE_TTL_S (0.5 s): wait that out.
    status = _settled(stack, a, job_id, lambda d: d["progress"] == 70)
    assert status["status"] == "processing" and status["progress"] == 70

    # The same message again (a retry or a replay within the window): recognised, no effect.
    replay = _post(a, body60, headers60)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"

    # Two different completed messages race on both replicas, several times each.
    completed = [
        _signed(
            {
                "job_id": job_id,
                "status": "completed",
                "progress": 100,
                "result": _result(f"version {i} of the transcript"),
            }
        )
        for i in range(2)
    ]
    answers: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def fire(base: str, msg: tuple[bytes, dict[str, str]]) -> None:
        barrier.wait()
        r = _post(base, *msg)
        with lock:
            answers.append(f"{r.status_code}:{r.json().get('status')}")

    threads = [
        threading.Thread(target=fire, args=(base, completed[i % 2]))
        for i, base in enumerate([a, b, a, b, b, a, a, b])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 8 and all(x.startswith("200:") for x in answers), answers
    assert answers.count("200:received") == 1, answers  # exactly one completion applied

    final = _settled(stack, a, job_id, lambda d: d["status"] == "completed")
    assert final["status"] == "completed" and final["progress"] == 100
    winner = final["result"]["segments"][0]["text"]
    assert winner in ("version 0 of the transcript", "version 1 of the transcript")

    # Late and contradictory messages after completion change nothing.
    late = [
        progress(80),
        {
            "job_id": job_id,
            "status": "failed",
            "progress": 10,
            "error_code": "WORKER_LOST",
            "error_message": "late failure",
        },
        {
            "job_id": job_id,
            "status": "completed",
            "progress": 100,
            "result": _result("a third transcript"),
        },
    ]
    for msg in late:
        r = _post(b, *_signed(msg))
        assert r.status_code == 200 and r.json()["status"] == "already_completed", r.text

    # Stale (outside ±300 s), forged and unsigned messages are refused: 401, nothing changes.
    stale = _signed(progress(90), timestamp=int(time.time()) - 3600)
    assert _post(a, *stale).status_code == 401
    body, headers = _signed(late[1])
    headers["webhook-signature"] = "v1,Zm9yZ2VkIHNpZ25hdHVyZSBmb3JnZWQgc2lnbmF0dXJlIQ=="
    headers.pop("X-Signature-256")
    assert _post(a, body, headers).status_code == 401
    assert (
        httpx.post(
            a + WEBHOOK, content=body, timeout=10, headers={"Content-Type": "application/json"}
        ).status_code
        == 401
    )

    again = _settled(stack, b, job_id, lambda d: d["status"] == "completed")
    assert again["status"] == "completed" and again["result"]["segments"][0]["text"] == winner
    applied = sum(p.log_text().count(f"job completed: job_id={job_id}") for p in stack.backends)
    assert applied == 1
