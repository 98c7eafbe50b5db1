"""Signed traffic in both directions: forged, stale, tampered and replayed messages are refused
or have no effect (docs/protocol.md, *Signing*)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from ecg_protocol import sign_headers
from tests.support.ml_requests import get_job
from tests.support.security import Outpost
from tests.support.stack import SECRET, Stack


def _signed(
    payload: dict[str, Any], secret: str = SECRET, **kw: Any
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", **sign_headers(body, secret, **kw)}


def _cases(payload: dict[str, Any]) -> dict[str, tuple[bytes, dict[str, str]]]:
    body, good = _signed(payload)
    stale_body, stale = _signed(payload, timestamp=int(time.time()) - 3600)
    future_body, future = _signed(payload, timestamp=int(time.time()) + 3600)
    _, forged = _signed(payload, secret="someone-elses-secret")
    tampered = body.replace(b'"job_id"', b' "job_id"')
    partial = {k: v for k, v in good.items() if k != "webhook-signature"}
    return {
        "unsigned": (body, {"Content-Type": "application/json"}),
        "forged": (body, forged),
        "stale": (stale_body, stale),
        "future": (future_body, future),
        "tampered-body": (tampered, good),
        "incomplete-headers": (body, partial),
        "empty-signature": (
            body,
            {**good, "webhook-signature": "v1,", "X-Signature-256": "sha256="},
        ),
    }


BAD_SIGNATURE_CASES = [
    "unsigned",
    "forged",
    "stale",
    "future",
    "tampered-body",
    "incomplete-headers",
    "empty-signature",
]


@pytest.mark.parametrize("case", BAD_SIGNATURE_CASES)
def test_ml_server_refuses_badly_signed_process(sec_stack: Stack, case: str) -> None:
    job_id = str(uuid.uuid4())
    body, headers = _cases(
        {
            "job_id": job_id,
            "video_url": "https://example.com/v.mp4",
            "fastapi_base_url": "https://example.com",
        }
    )[case]
    r = httpx.post(f"{sec_stack.ml_url}/process", content=body, headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    assert get_job(sec_stack.ml_url, job_id, SECRET).status_code == 404


@pytest.mark.parametrize("case", BAD_SIGNATURE_CASES)
def test_backend_refuses_badly_signed_callbacks(sec_stack: Stack, case: str) -> None:
    body, headers = _cases({"job_id": str(uuid.uuid4()), "status": "processing", "progress": 5})[
        case
    ]
    headers["User-Agent"] = "ecg-ml-server"
    r = httpx.post(
        f"{sec_stack.backend_url}/api/upload-video/result",
        content=body,
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 401, r.text


def test_replayed_process_does_the_work_once(worker: Stack) -> None:
    # A captured, validly signed /process replayed (within the window) queues nothing new.
    outpost = Outpost()
    try:
        job_id = str(uuid.uuid4())
        body, headers = _signed(
            {
                "job_id": job_id,
                "video_url": f"{outpost.base_url}/missing.mp4",
                "fastapi_base_url": outpost.base_url,
            }
        )
        first = httpx.post(f"{worker.ml_url}/process", content=body, headers=headers, timeout=10)
        assert first.status_code == 202, first.text
        outpost.final_for(job_id, timeout_s=60)
        for _ in range(3):
            again = httpx.post(
                f"{worker.ml_url}/process", content=body, headers=headers, timeout=10
            )
            assert again.status_code == 202 and again.json()["status"] == "failed"
        assert worker.store().attempts(job_id) == 1  # ran once
        finals = [
            c
            for c in outpost.callbacks
            if c.get("job_id") == job_id and c.get("status") == "failed"
        ]
        assert len(finals) == 1
    finally:
        outpost.close()
