"""SSRF: the ML server never fetches from, or calls back to, a private, loopback or link-local
address (directly, by a DNS name that resolves there, or through a redirect)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ecg_protocol import sign_headers
from tests.support.ml_requests import get_job
from tests.support.security import Outpost
from tests.support.stack import SECRET, Stack

PRIVATE_URLS = [
    "http://10.0.0.1/video.mp4",
    "http://172.16.5.4/video.mp4",
    "http://192.168.1.20/video.mp4",
    "http://100.64.0.1/video.mp4",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://127.0.0.1:9/video.mp4",
    "http://127.1/video.mp4",  # short form of 127.0.0.1
    "http://2130706433/video.mp4",  # decimal 127.0.0.1
    "http://0x7f000001/video.mp4",  # hex 127.0.0.1
    "http://0.0.0.0/video.mp4",
    "http://[::1]/video.mp4",
    "http://[::ffff:10.0.0.1]/video.mp4",  # IPv4-mapped IPv6
    "http://[fe80::1]/video.mp4",
    "http://localhost/video.mp4",  # a DNS name that resolves to loopback (/etc/hosts)
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://10.0.0.1/video.mp4",
]


@pytest.fixture(scope="module")
def outpost() -> Iterator[Outpost]:
    server = Outpost()
    yield server
    server.close()


def _process(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    return httpx.post(f"{stack.ml_url}/process", content=body, headers=headers, timeout=30)


def _job(stack: Stack, job_id: str) -> httpx.Response:
    return get_job(stack.ml_url, job_id, SECRET)


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_video_url_is_refused(sec_stack: Stack, outpost: Outpost, url: str) -> None:
    job_id = str(uuid.uuid4())
    r = _process(
        sec_stack, {"job_id": job_id, "video_url": url, "fastapi_base_url": outpost.base_url}
    )
    assert r.status_code in (400, 422), r.text
    assert _job(sec_stack, job_id).status_code == 404  # nothing was queued


@pytest.mark.parametrize("url", [u for u in PRIVATE_URLS if u.startswith("http")])
def test_private_callback_url_is_refused(sec_stack: Stack, outpost: Outpost, url: str) -> None:
    job_id = str(uuid.uuid4())
    base = url.rsplit("/", 1)[0]
    r = _process(
        sec_stack,
        {"job_id": job_id, "video_url": f"{outpost.base_url}/v.mp4", "fastapi_base_url": base},
    )
    assert r.status_code in (400, 422), r.text
    assert _job(sec_stack, job_id).status_code == 404


# RFC 6761 names: loopback by definition, though this machine's resolver may not answer them.
LOOPBACK_NAMES = [
    "http://app.localhost:9/video.mp4",
    "http://localhost.:9/video.mp4",
    "http://LocalHost/video.mp4",
    "http://a.b.localhost./video.mp4",
]


@pytest.mark.parametrize("url", LOOPBACK_NAMES)
def test_loopback_names_are_refused_by_name(sec_stack: Stack, outpost: Outpost, url: str) -> None:
    # Refused up front by name, whatever (if anything) the resolver answers: nothing is queued.
    job_id = str(uuid.uuid4())
    r = _process(
        sec_stack, {"job_id": job_id, "video_url": url, "fastapi_base_url": outpost.base_url}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "URL_NOT_ALLOWED", r.text
    assert _job(sec_stack, job_id).status_code == 404
    job_id = str(uuid.uuid4())
    r = _process(
        sec_stack,
        {
            "job_id": job_id,
            "video_url": f"{outpost.base_url}/v.mp4",
            "fastapi_base_url": url.rsplit("/", 1)[0],
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "URL_NOT_ALLOWED", r.text
    assert _job(sec_stack, job_id).status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://127.0.0.1:9/secret",
        "http://localhost:9/secret",
        "http://10.1.2.3/internal.mp4",
    ],
)
def test_redirect_to_a_private_address_fails_the_job(
    worker: Stack, outpost: Outpost, target: str
) -> None:
    # The first URL is allowed (the outpost); it redirects somewhere private. The download
    # must re-check every hop and fail the job with a specific code, never fetch the target.
    job_id = str(uuid.uuid4())
    video_url = str(httpx.URL(f"{outpost.base_url}/redirect", params={"to": target}))
    r = _process(
        worker, {"job_id": job_id, "video_url": video_url, "fastapi_base_url": outpost.base_url}
    )
    assert r.status_code == 202, r.text
    final = outpost.final_for(job_id, timeout_s=60)
    assert final["status"] == "failed"
    assert final["error_code"] == "URL_NOT_ALLOWED", final
