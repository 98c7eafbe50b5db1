"""The signed ML-server client: how each answer of the ML server maps to the guide's codes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from app.services.ml_client import (
    MLClient,
    MLRequestError,
    _retry_after,
    parse_job_state,
    process_message_id,
)
from ecg_protocol import ErrorCode, MLJobStatus, ProcessRequest
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port

SECRET = "client-test-secret"


@pytest.fixture
def fake() -> Iterator[FakeMLServer]:
    with FakeMLServer(secret=SECRET) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def request(job_id: uuid.UUID) -> ProcessRequest:
    return ProcessRequest(
        job_id=str(job_id),
        video_url="http://storage.test/v.mp4",
        fastapi_base_url="http://127.0.0.1:8000",
    )


def client(url: str, http: httpx.AsyncClient, timeout_s: float = 2.0) -> MLClient:
    return MLClient(base_url=url, http=http, secret=SECRET, timeout_s=timeout_s)


async def test_accepted_request_is_signed_with_a_stable_id(
    fake: FakeMLServer, http: httpx.AsyncClient
) -> None:
    jid = uuid.uuid4()
    ml = client(fake.url + "/", http)  # a trailing slash in MODEL_SERVER_URL is fine
    await ml.process(request(jid), msg_id=process_message_id(jid, 0))
    await ml.process(request(jid), msg_id=process_message_id(jid, 0))
    reqs = fake.process_requests(str(jid))
    assert [r.verified for r in reqs] == [True, True]
    assert {r.msg_id for r in reqs} == {f"msg_process_{jid.hex}_0"}
    assert len(fake.jobs) == 1  # the fake deduplicates by job_id, like the real one


async def test_accepted_answer_is_read_as_process_accepted(
    fake: FakeMLServer, http: httpx.AsyncClient
) -> None:
    jid = uuid.uuid4()
    accepted = await client(fake.url, http).process(request(jid), msg_id=process_message_id(jid, 0))
    assert accepted is not None
    assert (accepted.job_id, accepted.status) == (str(jid), MLJobStatus.QUEUED)


def _answering(status: int, body: bytes) -> httpx.AsyncClient:
    """An HTTP client whose every request gets this one answer (a server off the protocol)."""
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _req: httpx.Response(status, content=body))
    )


async def test_a_2xx_that_is_no_process_accepted_is_logged_not_guessed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jid = uuid.uuid4()
    async with _answering(202, b'{"ok": true}') as http:
        accepted = await client("http://ml.test", http).process(
            request(jid), msg_id=process_message_id(jid, 0)
        )
    assert accepted is None  # handed over (2xx), but nothing read from a body off the protocol
    assert any("no ProcessAccepted" in r.getMessage() for r in caplog.records)


async def test_cancel_is_signed_and_read_as_cancel_accepted(
    fake: FakeMLServer, http: httpx.AsyncClient
) -> None:
    jid = uuid.uuid4()
    ml = client(fake.url, http)
    assert await ml.cancel(str(jid)) is None  # unknown to the server: nothing to cancel
    await ml.process(request(jid), msg_id=process_message_id(jid, 0))
    accepted = await ml.cancel(str(jid))
    assert accepted is not None
    assert (accepted.job_id, accepted.status) == (str(jid), MLJobStatus.CANCELLED)
    deletes = [r for r in fake.received if r.method == "DELETE"]
    assert [r.verified for r in deletes] == [True, True]
    assert {r.msg_id for r in deletes} == {f"msg_cancel_{jid.hex}"}
    assert fake.jobs[str(jid)].status == "cancelled"


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (202, b'{"cancelled": true}', "no CancelAccepted"),
        (202, b'{"job_id": "x", "status": "canceled"}', "no CancelAccepted"),
        (500, b"oops", "HTTP 500"),
    ],
)
async def test_cancel_answer_off_the_protocol_is_an_error(
    status: int, body: bytes, words: str
) -> None:
    async with _answering(status, body) as http:
        with pytest.raises(MLRequestError) as info:
            await client("http://ml.test", http).cancel(str(uuid.uuid4()))
    assert info.value.code == ErrorCode.ML_SERVER_ERROR and words in info.value.message


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, ErrorCode.ML_SERVER_ERROR, True),
        (503, ErrorCode.ML_SERVER_ERROR, True),
        (429, ErrorCode.ML_SERVER_ERROR, True),
        (400, ErrorCode.DISPATCH_REJECTED, False),
        (401, ErrorCode.DISPATCH_REJECTED, False),
        (413, ErrorCode.DISPATCH_REJECTED, False),
    ],
)
async def test_error_answers_map_to_codes(
    fake: FakeMLServer, http: httpx.AsyncClient, status: int, code: ErrorCode, retryable: bool
) -> None:
    fake.behaviour.always_status = status
    fake.behaviour.retry_after = "7"
    jid = uuid.uuid4()
    with pytest.raises(MLRequestError) as info:
        await client(fake.url, http).process(request(jid), msg_id=process_message_id(jid, 0))
    err = info.value
    assert (err.code, err.retryable, err.http_status) == (code, retryable, status)
    assert str(err).startswith(f"{code.value}: ")
    if status in (429, 503, 500):
        assert err.retry_after_s == 7.0


async def test_unreachable_is_connection_error(http: httpx.AsyncClient) -> None:
    jid = uuid.uuid4()
    with pytest.raises(MLRequestError) as info:
        await client(f"http://127.0.0.1:{free_port()}", http).process(
            request(jid), msg_id=process_message_id(jid, 0)
        )
    assert info.value.code == ErrorCode.CONNECTION_ERROR and info.value.retryable


async def test_slow_is_timeout_error(fake: FakeMLServer, http: httpx.AsyncClient) -> None:
    fake.behaviour.delay_s = 1.0
    jid = uuid.uuid4()
    with pytest.raises(MLRequestError) as info:
        await client(fake.url, http, timeout_s=0.2).process(
            request(jid), msg_id=process_message_id(jid, 0)
        )
    assert info.value.code == ErrorCode.TIMEOUT_ERROR and info.value.retryable


async def test_get_job_states(fake: FakeMLServer, http: httpx.AsyncClient) -> None:
    jid = uuid.uuid4()
    ml = client(fake.url, http)
    assert await ml.get_job(str(jid)) is None  # unknown → None (lost)
    await ml.process(request(jid), msg_id=process_message_id(jid, 0))
    state = await ml.get_job(str(jid))
    assert state is not None and state.status == "running"
    fake.set_running(str(jid), progress=55, stage="diarize")
    state = await ml.get_job(str(jid))
    assert state is not None and (state.status, state.progress, state.stage) == (
        "running",
        55,
        "diarize",
    )
    fake.finish(str(jid), {"segments": []}, callback=False)
    state = await ml.get_job(str(jid))
    assert state is not None and state.status == "completed"
    assert state.result is not None and state.result["segments"] == []  # full wire shape
    gets = [r for r in fake.received if r.method == "GET"]
    assert gets and all(r.verified for r in gets)


@pytest.mark.parametrize(
    ("doc", "status"),
    [
        ({"status": "completed", "result": {"segments": []}}, "completed"),
        ({"status": "completed"}, "running"),  # done but no result yet: ask again later
        ({"status": "processing", "progress": 30, "stage": "diarize"}, "running"),
        ({"status": "queued"}, "running"),
        ({"status": "failed", "error_code": "NO_AUDIO_TRACK"}, "failed"),
        ({"status": "cancelled", "error_code": "CANCELLED"}, "failed"),
    ],
)
def test_parse_job_state(doc: dict[str, object], status: str) -> None:
    state = parse_job_state(json.dumps({"job_id": "j1", **doc}), job_id="j1")
    assert state.status == status and state.record is not None
    assert state.record.status == doc["status"]


@pytest.mark.parametrize(
    "doc",
    [
        # Synonyms other servers use are not this protocol's: no guess at what they meant.
        {"job_id": "j1", "status": "succeeded", "result": {"segments": []}},
        {"job_id": "j1", "status": "canceled"},
        {"job_id": "j1", "status": "failed", "stage": "somewhere"},
        {"job_id": "j1", "status": "completed", "result": {"segments": "none"}},
        {"state": "processing"},  # no job_id
        {"job_id": "j2", "status": "queued"},  # another job's record
        [],
    ],
)
def test_a_record_outside_the_protocol_is_a_protocol_error(doc: object) -> None:
    state = parse_job_state(json.dumps(doc), job_id="j1")
    assert state.status == "failed" and state.record is None
    assert state.error_code == ErrorCode.ML_SERVER_ERROR
    assert state.error_message is not None and "protocol error" in state.error_message


def test_retry_after_forms() -> None:
    def resp(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert _retry_after(resp("3")) == 3.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    after = _retry_after(resp(when))
    assert after is not None and 25 <= after <= 31
    assert _retry_after(resp("soon")) is None
    assert _retry_after(httpx.Response(429)) is None
