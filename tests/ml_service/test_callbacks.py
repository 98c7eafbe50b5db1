"""Callback sender against a real receiver: retries, Retry-After, no retry on 4xx, signing.

The contract test checks the ML server's signature with an HMAC written here from
docs/protocol.md (*Signing*) (hashlib/hmac/base64 only), independent of ecg_protocol.
"""

from __future__ import annotations

import json

import pytest

from ecg_protocol import AnalysisResult, CallbackPayload, Metadata, Stage
from ecg_protocol.errors import retry_after_s
from ml_server.callbacks import CallbackSender, JobCallbacks
from ml_server.config import MLSettings
from tests.support.local_servers import CallbackReceiver
from tests.support.ml_service import SECRET, independent_check, ml_settings
from tests.support.net import free_port
from tests.support.procs import wait_for


def settings(**overrides: object) -> MLSettings:
    """More attempts and a low backoff ceiling than the default test settings, so the retry
    schedule shows."""
    values: dict[str, object] = {
        "ml_callback_max_attempts": 5,
        "ml_callback_backoff_max_s": 0.05,
        "ml_callback_timeout_s": 5,
        **overrides,
    }
    return ml_settings(**values)


class SleepLog:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def completed(job_id: str = "job-1") -> CallbackPayload:
    return CallbackPayload(
        job_id=job_id,
        status="completed",
        progress=100,
        result=AnalysisResult(metadata=Metadata(filename="v.mp4", duration=1.0)),
    )


def test_contract_signature_accepted_by_independent_hmac(receiver: CallbackReceiver) -> None:
    sender = CallbackSender(settings())
    assert sender.deliver(receiver.base_url, completed())
    [request] = receiver.requests
    assert request.path == "/api/upload-video/result"
    independent_check(request, SECRET)
    with pytest.raises(AssertionError):
        independent_check(request, "another-secret")
    body = json.loads(request.body)
    assert body["status"] == "completed" and body["progress"] == 100
    assert body["result"]["metadata"]["filename"] == "v.mp4"
    assert set(body) >= {"job_id", "status", "progress", "message", "result", "error_code"}


def test_500_three_times_then_200_delivers_once_with_one_webhook_id(
    receiver: CallbackReceiver,
) -> None:
    receiver.fail_finals = 3
    sleep = SleepLog()
    sender = CallbackSender(settings(), sleep=sleep)
    assert sender.deliver(receiver.base_url, completed())
    answered = [r.answered for r in receiver.requests]
    assert answered == [500, 500, 500, 200]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for r in receiver.requests:
        independent_check(r, SECRET)
    # Exponential with jitter in [½, 1] of 0.01·2^(n-1), capped at 0.05.
    assert len(sleep.delays) == 3
    for n, delay in enumerate(sleep.delays, start=1):
        ceiling = min(0.05, 0.01 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_429_honours_retry_after(receiver: CallbackReceiver) -> None:
    answers = [(429, {"Retry-After": "0"}), (503, {"Retry-After": "7"}), (200, {})]
    receiver.answer = lambda data: answers.pop(0)
    sleep = SleepLog()
    sender = CallbackSender(settings(ml_callback_backoff_max_s=5.0), sleep=sleep)
    assert sender.deliver(receiver.base_url, completed())
    assert sleep.delays == [0.0, 5.0]  # the hint, capped at the backoff maximum


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_is_not_retried(receiver: CallbackReceiver, status: int) -> None:
    receiver.answer = lambda data: (status, {})
    sender = CallbackSender(settings(), sleep=SleepLog())
    assert not sender.deliver(receiver.base_url, completed())
    assert len(receiver.requests) == 1


def test_receiver_down_gives_up_after_bounded_attempts() -> None:
    sleep = SleepLog()
    sender = CallbackSender(settings(ml_callback_max_attempts=3), sleep=sleep)
    assert not sender.deliver(f"http://127.0.0.1:{free_port()}", completed())
    assert len(sleep.delays) == 2


def test_private_callback_host_is_refused(receiver: CallbackReceiver) -> None:
    sender = CallbackSender(settings(ml_allowed_private_hosts=""), sleep=SleepLog())
    assert not sender.deliver(receiver.base_url, completed())
    assert receiver.requests == []


def test_retry_after_http_date() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_notifier_progress_is_monotonic_and_final_is_last(receiver: CallbackReceiver) -> None:
    sender = CallbackSender(settings())
    notifier = JobCallbacks(sender, job_id="job-2", fastapi_base_url=receiver.base_url)
    for stage, pct in [
        (Stage.DOWNLOAD, 0),
        (Stage.DOWNLOAD, 10),
        (Stage.TRANSCRIBE, 40),
        (Stage.DIARIZE, 30),
        (Stage.PROSODY, 70),
    ]:
        notifier.progress(stage, pct)
    wait_for(
        lambda: any(r.json.get("stage") == "prosody" for r in receiver.requests),
        timeout_s=10,
        what="the last progress callback",
    )
    assert notifier.completed(completed("job-2").result or AnalysisResult())
    statuses = [r.json["status"] for r in receiver.requests]
    assert statuses[-1] == "completed" and statuses.count("completed") == 1
    progress = [r.json["progress"] for r in receiver.requests]
    assert progress == sorted(progress) and progress[-1] == 100
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(receiver.requests)
