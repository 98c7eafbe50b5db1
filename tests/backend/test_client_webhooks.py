"""Client webhooks against a real HTTP receiver on loopback: job.completed / job.failed signed
per Standard Webhooks and verified by the official `standardwebhooks` SDK, retries with one
`webhook-id`, giving up, the SSRF guard on `webhook_url`, and the ML ↔ backend secret in
`whsec_` form (real app on SQLite and PostgreSQL, fake ML server behind it)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from app.models.job import Job
from app.services.job_service import JobService, NotifyState
from ecg_protocol import sign_headers
from ecg_protocol.secret import new_whsec
from tests.support.backend import Backend, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.results import caption_result

SECRET = new_whsec()


@dataclass
class Receiver:
    """A webhook endpoint: records each POST, answers with the queued statuses (then 200)."""

    port: int
    statuses: queue.Queue[int] = field(default_factory=queue.Queue)
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ecg"

    def wait_for(self, n: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.got) < n:
            assert time.monotonic() < deadline, f"{len(self.got)} of {n} deliveries arrived"
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            try:
                status = rec.statuses.get_nowait()
            except queue.Empty:
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", rec.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
async def hooked(db_url: str, tmp_path: Path, fake_ml: FakeMLServer) -> AsyncIterator[Backend]:
    settings = make_settings(
        tmp_path,
        db_url,
        model_server_url=fake_ml.url,
        client_webhook_secret=SECRET,
        webhook_allowed_private_hosts="127.0.0.1",
        client_webhook_backoff_s=0.1,
        client_webhook_max_attempts=3,
        dispatch_poll_interval_s=0.1,
    )
    async for b in open_backend(settings):
        yield b


async def _job_row(backend: Backend, job_id: str) -> Job:
    async with backend.ctx.session_factory() as session:
        job = await JobService(session).get_job(job_id=uuid.UUID(job_id))
    assert job is not None
    return job


async def _wait_state(backend: Backend, job_id: str, state: NotifyState) -> Job:
    deadline = time.monotonic() + 20
    while (job := await _job_row(backend, job_id)).notify_state != state.value:
        assert time.monotonic() < deadline, job.notify_state
        await asyncio.sleep(0.05)
    return job


async def test_completed_event_verifies_with_the_official_sdk(
    hooked: Backend, receiver: Receiver
) -> None:
    job_id = await hooked.start_job(webhook_url=receiver.url)
    done = {"job_id": job_id, "status": "completed", "progress": 100}
    assert (await hooked.callback({**done, "result": caption_result().to_stored()})).is_success
    await _wait_state(hooked, job_id, NotifyState.DELIVERED)
    headers, body = receiver.got[0]
    event = standardwebhooks.Webhook(SECRET).verify(body, headers)
    assert event["type"] == "job.completed"
    assert event["data"]["job_id"] == job_id
    assert event["data"]["result_url"].endswith(f"/api/upload-video/result/{job_id}?format=json")
    assert "x-signature-256" not in headers
    # A tampered body fails the SDK's check.
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body.replace(b"completed", b"failed"), headers)
    assert len(receiver.got) == 1


async def test_event_goes_out_when_the_job_becomes_final_not_at_the_next_poll(
    sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer, receiver: Receiver
) -> None:
    """The callback that makes a job final wakes the sender: a 60 s poll is not waited out."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        model_server_url=fake_ml.url,
        client_webhook_secret=SECRET,
        webhook_allowed_private_hosts="127.0.0.1",
        dispatch_poll_interval_s=60.0,
    )
    async for backend in open_backend(settings):
        job_id = await backend.start_job(webhook_url=receiver.url)
        await asyncio.sleep(0.2)  # the sender's first round has run and it now waits its poll
        done = {"job_id": job_id, "status": "completed", "progress": 100}
        assert (await backend.callback({**done, "result": caption_result().to_stored()})).is_success
        started = time.monotonic()
        await asyncio.to_thread(receiver.wait_for, 1, 10.0)
        assert time.monotonic() - started < 10.0


async def test_failed_event_retries_with_one_id_until_accepted(
    hooked: Backend, receiver: Receiver
) -> None:
    receiver.statuses.put(500)
    receiver.statuses.put(503)
    job_id = await hooked.start_job(webhook_url=receiver.url)
    failed = {"job_id": job_id, "status": "failed", "error_code": "NO_AUDIO_TRACK"}
    assert (await hooked.callback({**failed, "error_message": "no audio"})).is_success
    job = await _wait_state(hooked, job_id, NotifyState.DELIVERED)
    assert job.notify_attempts == 3 and len(receiver.got) == 3
    assert len({h["webhook-id"] for h, _ in receiver.got}) == 1
    event = standardwebhooks.Webhook(SECRET).verify(receiver.got[-1][1], receiver.got[-1][0])
    assert event["type"] == "job.failed" and event["data"]["error_code"] == "NO_AUDIO_TRACK"


async def test_unreachable_receiver_gives_up_after_the_attempts(hooked: Backend) -> None:
    dead = f"http://127.0.0.1:{free_port()}/gone"
    job_id = await hooked.start_job(webhook_url=dead)
    done = {"job_id": job_id, "status": "completed", "progress": 100}
    assert (await hooked.callback({**done, "result": caption_result().to_stored()})).is_success
    job = await _wait_state(hooked, job_id, NotifyState.FAILED)
    assert job.notify_attempts == 3
    # The job itself is untouched by its webhook's fate.
    assert (await hooked.status(job_id)).json()["status"] == "completed"


async def test_jobs_without_a_webhook_and_open_jobs_send_nothing(
    hooked: Backend, receiver: Receiver
) -> None:
    plain = await hooked.start_job()
    pending = await hooked.start_job(webhook_url=receiver.url)
    done = {"job_id": plain, "status": "completed", "progress": 100}
    assert (await hooked.callback({**done, "result": caption_result().to_stored()})).is_success
    assert await hooked.ctx.client_events.deliver_due() == 0
    assert (await _job_row(hooked, plain)).notify_state is None
    assert (await _job_row(hooked, pending)).notify_state == NotifyState.PENDING.value
    assert receiver.got == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.2:9/x", "WEBHOOK_ALLOWED_PRIVATE_HOSTS"),
        ("http://localhost:9/x", "loopback name"),
        ("http://169.254.169.254/latest/meta-data", "WEBHOOK_ALLOWED_PRIVATE_HOSTS"),
        ("ftp://example.com/x", "scheme"),
        ("not a url", "scheme"),
    ],
)
async def test_private_and_odd_webhook_urls_are_refused(
    hooked: Backend, fake_ml: FakeMLServer, url: str, why: str
) -> None:
    key = await hooked.upload()
    resp = await hooked.client.post(
        "/api/upload-video/request-process", json={"fileKey": key, "webhook_url": url}
    )
    assert resp.status_code == 400, resp.text
    assert why in resp.json()["detail"]
    assert not fake_ml.accepted


async def test_ml_secret_in_whsec_form_is_accepted_and_sdk_verifiable(
    sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer
) -> None:
    ml_secret = new_whsec()
    fake_ml.secret = ml_secret
    settings = make_settings(
        tmp_path, sqlite_url, model_server_url=fake_ml.url, webhook_secret_key=ml_secret
    )
    async for backend in open_backend(settings):
        job_id = await backend.start_job()
        body = json.dumps({"job_id": job_id, "status": "processing", "progress": 5}).encode()
        headers = sign_headers(body, ml_secret)
        # The SDK, given the same whsec_ secret, accepts what our signer wrote …
        standardwebhooks.Webhook(ml_secret).verify(body, headers)
        # … and so does the backend.
        resp = await backend.client.post(
            "/api/upload-video/result",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        assert (await backend.status(job_id)).json()["progress"] == 5
