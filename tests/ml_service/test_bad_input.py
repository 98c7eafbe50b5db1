"""Malformed input to every ML server route gets a 4xx with a JSON body, never a 500: bodies the
JSON parser or the error rendering used to choke on, signature headers out of range, odd ids.
The app runs in-process with its real store and worker threads; no job here is accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from ecg_protocol import sign_headers
from ml_server.config import MLSettings
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.store import MemoryJobStore
from tests.support.ml_requests import job_headers
from tests.support.ml_service import SECRET


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    conf = MLSettings(webhook_secret_key=SECRET, ml_allowed_private_hosts="127.0.0.1")
    store = MemoryJobStore(60)
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    app = create_app(conf, store=store, executor=executor)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _post(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> dict[str, str]:
    signed = {"Content-Type": "application/json", **sign_headers(body, SECRET), **(headers or {})}
    response = client.post("/process", content=body, headers=signed)
    assert response.status_code < 500, response.text
    data: dict[str, str] = json.loads(response.content)  # valid JSON, whatever the input held
    return {"status": str(response.status_code), **{k: str(v) for k, v in data.items()}}


URLS = '"video_url": "http://example.com/v.mp4", "fastapi_base_url": "http://example.com"'

BAD_BODIES = {
    "nested arrays": b"[" * 60_000,
    "nested objects": b'{"a":' * 12_000,
    "NaN": b'{"job_id": NaN, ' + URLS.encode() + b"}",
    "Infinity in options": b'{"job_id": "j", "options": {"min_speakers": Infinity}, '
    + URLS.encode()
    + b"}",
    "lone surrogate": b'{"job_id": "\\ud800", "video_url": "http://example.com/\\udfff", '
    b'"fastapi_base_url": "http://example.com"}',
    "not UTF-8": b'{"job_id": "\xff\xfe", ' + URLS.encode() + b"}",
    "huge integer": b'{"job_id": 1' + b"0" * 5000 + b", " + URLS.encode() + b"}",
    "JSON null": b"null",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_malformed_bodies_are_422(client: TestClient, name: str) -> None:
    answer = _post(client, BAD_BODIES[name])
    assert answer["status"] == "422", answer
    assert answer["error_code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "timestamp", ["9" * 400, "-" + "9" * 400, "1e999", "nan", "0x10", "9" * 5000]
)
def test_out_of_range_signature_timestamps_are_401(client: TestClient, timestamp: str) -> None:
    body = b"{}"
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1,AAAA",
    }
    answer = _post(client, body, headers)
    assert answer["status"] == "401", answer
    assert answer["error_code"] == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    "video_url",
    [
        "http://[fe80::1%25eth0]/v.mp4",  # zone id the resolver cannot parse: judged as written
        "http://[::1%251]/v.mp4",
        "http://[::1/v.mp4",
        "http://example.com:99999/v.mp4",
        "http://\u2100.com/v.mp4",
    ],
)
def test_unusable_or_private_urls_are_400(client: TestClient, video_url: str) -> None:
    body = json.dumps(
        {"job_id": "bad-url", "video_url": video_url, "fastapi_base_url": "http://example.com"}
    ).encode()
    answer = _post(client, body)
    assert answer["status"] == "400", answer
    assert answer["error_code"] == "URL_NOT_ALLOWED"


@pytest.mark.parametrize("job_id", ["x" * 5000, "%00", "%ff", "..%2F..", "\u00e9", "%20"])
def test_odd_job_ids_are_404(client: TestClient, job_id: str) -> None:
    meant = unquote(job_id)  # what the server decodes, and so what a client signs
    get = client.get(f"/jobs/{job_id}", headers=job_headers("GET", meant, SECRET))
    assert get.status_code == 404
    delete = client.delete(f"/jobs/{job_id}", headers=job_headers("DELETE", meant, SECRET))
    assert delete.status_code == 404
