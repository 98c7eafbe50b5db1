"""The app in-process (lifespan and real worker threads, no model needed): edge cases of /process
and execute_job's own failure paths."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ecg_protocol import ProcessRequest, sign_headers
from ecg_protocol.jobs import MLJobStatus
from ml_server.callbacks import CallbackSender
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.models import Models
from ml_server.runner import execute_job
from ml_server.store import MemoryJobStore
from tests.support import media
from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.ml_service import SECRET, ml_settings, new_job_id, request_body
from tests.support.procs import wait_for


@pytest.fixture
def unsigned_client() -> Iterator[tuple[TestClient, MemoryJobStore]]:
    conf = ml_settings(ml_require_signature=False)
    store = MemoryJobStore(60)
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    with TestClient(create_app(conf, store=store, executor=executor)) as client:
        yield client, store


def test_signature_can_be_switched_off(
    unsigned_client: tuple[TestClient, MemoryJobStore],
    receiver: CallbackReceiver,
    media_server: MediaServer,
) -> None:
    client, _ = unsigned_client
    job_id = new_job_id()
    response = client.post(
        "/process", json=request_body(job_id, media_server.url("/missing"), receiver.base_url)
    )
    assert response.status_code == 202
    assert receiver.wait_final(job_id, timeout_s=20).json["error_code"] == "DOWNLOAD_ERROR"
    record = client.get(f"/jobs/{job_id}").json()
    assert record["status"] == "failed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\xff\xfe\x00garbage", 422),
        (b"{" * 70_000, 413),
        (
            json.dumps(
                {"job_id": "x" * 65, "video_url": "http://a", "fastapi_base_url": "http://b"}
            ).encode(),
            422,
        ),
    ],
)
def test_bad_bodies_never_500(
    unsigned_client: tuple[TestClient, MemoryJobStore], body: bytes, status: int
) -> None:
    client, _ = unsigned_client
    assert client.post("/process", content=body).status_code == status


def test_signed_request_accepted_by_signature_check(receiver: CallbackReceiver) -> None:
    conf = ml_settings()
    store = MemoryJobStore(60)
    with TestClient(
        create_app(conf, store=store, executor=ThreadPoolJobExecutor(conf, store, warm=False))
    ) as client:
        job_id = new_job_id()
        body = json.dumps(request_body(job_id, "http://127.0.0.1:9/x", receiver.base_url)).encode()
        response = client.post("/process", content=body, headers=sign_headers(body, SECRET))
        assert response.status_code == 202
        receiver.wait_final(job_id, timeout_s=20)


def test_model_load_failure_is_one_failed_callback(
    receiver: CallbackReceiver,
    media_server: MediaServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = ml_settings()
    store = MemoryJobStore(60)
    job_id = new_job_id()
    request = ProcessRequest.model_validate(
        request_body(
            job_id, media_server.add("d.wav", media.dialogue("wav").path), receiver.base_url
        )
    )
    store.create_if_absent(request)

    def broken() -> Models:
        raise RuntimeError("model folder missing")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    execute_job(
        request, settings=conf, store=store, sender=CallbackSender(conf), models_provider=broken
    )
    [final] = receiver.finals(job_id)
    assert final.json["error_code"] == "ML_SERVER_ERROR"
    assert "model folder missing" in final.json["error_message"]
    record = store.get(job_id)
    assert record is not None and record.status is MLJobStatus.FAILED
    assert record.callback_delivered and record.callback_settled
    assert list(tmp_path.glob("ecg-ml-*")) == []


def test_shutdown_stops_a_running_job_without_a_final_callback(
    receiver: CallbackReceiver, media_server: MediaServer
) -> None:
    conf = ml_settings()
    store = MemoryJobStore(60)
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    job_id = new_job_id()
    request = ProcessRequest.model_validate(
        request_body(job_id, media_server.url(f"/trickle?s=30&id={job_id}"), receiver.base_url)
    )
    store.create_if_absent(request)
    executor.submit(request)
    wait_for(lambda: executor.stats().running == 1, timeout_s=10, what="the job to start")
    executor.shutdown(grace_s=5)
    assert executor.stats().running == 0
    assert receiver.finals(job_id, accepted_only=False) == []
    with pytest.raises(RuntimeError):
        executor.submit(request)
