"""Attacks on the backend's HTTP surface, in process (the real app, real databases): bodies
bounded before they are read, malformed JSON of any shape a 4xx, NaN refused, anonymous jobs
unlisted, deleting a job deletes its video, and the cancel sent to the ML server is signed.
The same attacks against a real `ecg backend` process are in tests/security."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ecg_protocol import sign_headers
from tests.support.backend import SECRET, Backend, auth, generate, new_user
from tests.support.fake_ml import FakeMLServer
from tests.support.results import completed, processing

WEBHOOK = "/api/upload-video/result"
JSON_ROUTES = {
    "generate-url": "/api/upload-video/generate-url",
    "request-process": "/api/upload-video/request-process",
    "webhook": WEBHOOK,
}

# Malformed JSON of every shape we could think of; none may give a 500.
MALFORMED: dict[str, bytes] = {
    "nested-arrays": b"[" * 2000,
    "nested-arrays-closed": b"[" * 2000 + b"]" * 2000,
    "nested-objects": b'{"a":' * 2000 + b"1" + b"}" * 2000,
    "nested-in-a-field": b'{"job_id": "x", "status": "processing", "result": '
    + b"[" * 3000
    + b"]" * 3000
    + b"}",
    "invalid-utf8": b'{"fileKey": "\xff\xfe"}',
    "lone-surrogate": b'{"fileKey": "\\ud800", "filename": "\\udfff"}',
    "nan-literal": b'{"fileKey": NaN, "progress": NaN}',
    "huge-number": b'{"progress": 1' + b"0" * 5000 + b"}",
    "huge-exponent": b'{"progress": 1e999999}',
    "top-level-array": b"[1, 2, 3]",
    "top-level-string": b'"hello"',
    "top-level-null": b"null",
    "truncated": b'{"fileKey": "vid',
    "bom": b'\xef\xbb\xbf{"fileKey": "x"}',
    "nul-bytes": b'{"fileKey": "\x00\x00"}',
    "duplicate-keys": b'{"fileKey": "a", "fileKey": {"x": 1}}',
    "whitespace-only": b" \n\t ",
}


async def _post(b: Backend, path: str, body: bytes, *, signed: bool) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers.update(sign_headers(body, SECRET))
    return await b.client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("shape", list(MALFORMED))
@pytest.mark.parametrize("route", list(JSON_ROUTES))
async def test_malformed_json_is_4xx_on_every_route(
    sqlite_backend: Backend, route: str, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    for signed in (False, True) if route == "webhook" else (False,):
        r = await _post(sqlite_backend, JSON_ROUTES[route], MALFORMED[shape], signed=signed)
        assert 400 <= r.status_code < 500, (signed, r.status_code, r.text)
        assert r.json()["detail"]
    assert not [rec for rec in caplog.records if rec.levelname in ("ERROR", "CRITICAL")]


async def test_nested_brackets_to_the_webhook_are_refused_unsigned_and_signed(
    sqlite_backend: Backend,
) -> None:
    """The reported attack: 2,000 `[` (no signature) gave RecursionError and a 500."""
    body = b"[" * 2000
    unsigned = await sqlite_backend.client.post(WEBHOOK, content=body)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "INVALID_SIGNATURE"
    signed = await _post(sqlite_backend, WEBHOOK, body, signed=True)
    assert signed.status_code == 422, signed.text


@pytest.mark.parametrize("route", ["generate-url", "request-process", "webhook"])
async def test_bodies_over_the_limit_are_413_on_the_header(
    sqlite_backend: Backend, route: str
) -> None:
    b = sqlite_backend
    limit = b.settings.webhook_max_bytes if route == "webhook" else b.settings.max_json_body_bytes
    body = b" " * (limit + 1)
    r = await _post(b, JSON_ROUTES[route], body, signed=True)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "REQUEST_TOO_LARGE" and r.json()["max_bytes"] == limit


class CountingBody:
    """A streamed (chunked) body that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            n = min(self.chunk, self.total - self.sent)
            self.sent += n
            yield b" " * n


@pytest.mark.parametrize("route", ["generate-url", "request-process", "webhook"])
async def test_streamed_bodies_are_refused_once_past_the_limit(
    sqlite_backend: Backend, route: str
) -> None:
    b = sqlite_backend
    b.ctx.settings.webhook_max_bytes = 256 * 1024
    limit = b.settings.webhook_max_bytes if route == "webhook" else b.settings.max_json_body_bytes
    body = CountingBody(total=200 * 1024 * 1024)
    # The webhook needs its headers (their timestamp is fresh; the signature is checked later).
    headers = sign_headers(b"", SECRET) if route == "webhook" else {}
    r = await b.client.post(JSON_ROUTES[route], content=body, headers=headers)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "REQUEST_TOO_LARGE"
    # Refused at the limit, not after the 200 MB: at most one chunk past it was pulled.
    assert body.sent <= limit + 2 * body.chunk


async def test_unsigned_webhook_is_refused_before_its_body_is_read(
    sqlite_backend: Backend,
) -> None:
    body = CountingBody(total=60 * 1024 * 1024)
    r = await sqlite_backend.client.post(WEBHOOK, content=body)
    assert r.status_code == 401 and r.json()["error"] == "INVALID_SIGNATURE"
    assert body.sent == 0
    # Declared (Content-Length) and unsigned: refused on the headers too.
    r = await sqlite_backend.client.post(WEBHOOK, content=b" " * (5 * 1024 * 1024))
    assert r.status_code == 401


@pytest.mark.parametrize(
    "drop", [("webhook-id", "webhook-timestamp", "webhook-signature"), ("webhook-signature",)]
)
async def test_dropping_headers_from_a_stale_callback_does_not_replay_it(
    sqlite_backend: Backend, drop: tuple[str, ...]
) -> None:
    b = sqlite_backend
    job_id = await b.start_job()
    body = json.dumps(processing(job_id, 60)).encode()
    captured = sign_headers(body, SECRET, timestamp=int(time.time()) - 3600)
    stale = await b.client.post(WEBHOOK, content=body, headers=captured)
    assert stale.status_code == 401 and stale.json()["reason"] == "stale_timestamp"
    stripped = {k: v for k, v in captured.items() if k not in drop}
    r = await b.client.post(WEBHOOK, content=body, headers=stripped)
    assert r.status_code == 401, r.text
    assert (await b.status(job_id)).json()["progress"] == 0


def _with_number(payload: dict[str, Any], literal: str) -> bytes:
    text = json.dumps(payload).replace('"volume_db": -19.87', f'"volume_db": {literal}', 1)
    assert literal in text
    return text.encode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_signed_result_with_non_finite_numbers_is_4xx_and_not_stored(
    backend: Backend, literal: str
) -> None:
    job_id = await backend.start_job()
    r = await backend.callback(_with_number(completed(job_id), literal))
    assert r.status_code == 422, r.text
    status = (await backend.status(job_id)).json()
    assert status["status"] == "pending" and status["result"] is None
    # The job can still complete with a valid result, and then exports.
    assert (await backend.callback(completed(job_id))).status_code == 200
    exported = await backend.client.get(f"/api/upload-video/result/{job_id}?format=srt")
    assert exported.status_code == 200


async def test_anonymous_callers_are_unlisted(backend: Backend) -> None:
    anon_job = await backend.start_job()
    user = new_user()
    own = await backend.start_job(headers=auth(user))
    listed = await backend.client.get("/api/jobs")
    assert listed.status_code == 200 and listed.json() == {"jobs": [], "count": 0}
    assert anon_job not in listed.text
    mine = (await backend.client.get("/api/jobs", headers=auth(user))).json()
    assert [j["job_id"] for j in mine["jobs"]] == [own]
    # The unguessable id still reaches the job.
    assert (await backend.status(anon_job)).json()["job_id"] == anon_job


async def _delete_removes_video(b: Backend, fake: FakeMLServer, headers: dict[str, str]) -> None:
    key = await b.upload(headers=headers)
    r = await b.client.post(
        "/api/upload-video/request-process", json={"fileKey": key}, headers=headers
    )
    assert r.status_code == 200, r.text
    job_id = r.json()["job_id"]
    assert await b.ctx.storage.check_file_exists(key)
    r = await b.client.delete(f"/api/jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert not await b.ctx.storage.check_file_exists(key)
    again = await b.client.post(
        "/api/upload-video/request-process", json={"fileKey": key}, headers=headers
    )
    assert again.status_code == 404 and again.json()["error"] == "FILE_NOT_FOUND"


@pytest.mark.parametrize("who", ["anonymous", "user"])
async def test_deleting_a_job_deletes_its_video_locally(
    backend: Backend, fake_ml: FakeMLServer, who: str
) -> None:
    await _delete_removes_video(backend, fake_ml, {} if who == "anonymous" else auth(new_user()))


async def test_deleting_a_job_deletes_its_video_on_s3(
    s3_backend: Backend,
    fake_ml: FakeMLServer,
) -> None:
    b = s3_backend
    url, key = await generate(b)
    async with httpx.AsyncClient() as http:
        put = await http.put(url, content=b"\x00" * 2000, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200
    r = await b.client.post("/api/upload-video/request-process", json={"fileKey": key})
    job_id = r.json()["job_id"]
    assert await b.ctx.storage.check_file_exists(key)
    assert (await b.client.delete(f"/api/jobs/{job_id}")).status_code == 200
    assert not await b.ctx.storage.check_file_exists(key)
    again = await b.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert again.status_code == 404


async def test_cancel_sent_to_the_ml_server_is_signed(
    sqlite_backend: Backend, fake_ml: FakeMLServer
) -> None:
    b = sqlite_backend
    job_id = await b.start_job()
    deadline = time.monotonic() + 10
    while not fake_ml.process_requests(job_id):
        assert time.monotonic() < deadline, "job was never dispatched"
        await asyncio.sleep(0.05)
    assert (await b.client.delete(f"/api/jobs/{job_id}")).status_code == 200

    def cancels() -> list[Any]:
        return [r for r in fake_ml.received if r.method == "DELETE" and r.job_id == job_id]

    while not cancels():
        assert time.monotonic() < deadline, "no cancel reached the ML server"
        await asyncio.sleep(0.05)
    [cancel] = cancels()
    assert cancel.verified and cancel.msg_id
    assert fake_ml.jobs[job_id].status == "cancelled"


async def test_unknown_id_is_still_404_not_500(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.delete(f"/api/jobs/{uuid.uuid4()}")
    assert r.status_code == 404
