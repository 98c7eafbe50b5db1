"""Every error the ML server answers is one `ecg_protocol.ErrorBody`, and its signing secret is
read once at start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest
from fastapi.testclient import TestClient

from ecg_protocol import ErrorBody, MLJobStatus, ProcessRequest, sign_headers
from ecg_protocol.secret import SECRET_FILE
from ml_server.config import MLSettings
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.store import MemoryJobStore
from tests.support.ml_requests import job_headers
from tests.support.ml_service import SECRET


@pytest.fixture(scope="module")
def store() -> MemoryJobStore:
    return MemoryJobStore(60)


@pytest.fixture(scope="module")
def client(store: MemoryJobStore) -> Iterator[TestClient]:
    conf = MLSettings(webhook_secret_key=SECRET, ml_allowed_private_hosts="127.0.0.1")
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    with TestClient(create_app(conf, store=store, executor=executor)) as test_client:
        yield test_client


class _Answer(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


def _body(response: _Answer) -> ErrorBody:
    """The answer parsed strictly as an ErrorBody (a missing `detail`/`error_code` fails)."""
    assert response.headers["content-type"].startswith("application/json")
    return ErrorBody.model_validate_json(response.content)


def test_unknown_job_is_job_not_found(client: TestClient) -> None:
    for method in ("GET", "DELETE"):
        r = client.request(method, "/jobs/nope", headers=job_headers(method, "nope", SECRET))
        assert r.status_code == 404
        body = _body(r)
        assert (body.error_code, body.job_id) == ("JOB_NOT_FOUND", "nope")


def test_cancelling_a_final_job_is_job_final(client: TestClient, store: MemoryJobStore) -> None:
    request = ProcessRequest(
        job_id="final-1", video_url="http://example.com/v.mp4", fastapi_base_url="http://x"
    )
    store.create_if_absent(request)
    store.update("final-1", status=MLJobStatus.FAILED, error_code="DOWNLOAD_ERROR")
    r = client.delete("/jobs/final-1", headers=job_headers("DELETE", "final-1", SECRET))
    assert r.status_code == 409
    body = _body(r)
    assert (body.error_code, body.job_id, body.status) == ("JOB_FINAL", "final-1", "failed")
    assert "already failed" in body.detail


def test_framework_errors_have_the_same_shape(client: TestClient) -> None:
    missing = client.get("/no-such-route")
    assert missing.status_code == 404 and _body(missing).error_code == "NOT_FOUND"
    wrong = client.get("/process")
    assert wrong.status_code == 405 and _body(wrong).error_code == "METHOD_NOT_ALLOWED"


def test_refusals_of_process_have_the_shape(client: TestClient) -> None:
    unsigned = client.post("/process", content=b"{}")
    assert unsigned.status_code == 401
    refused = _body(unsigned)
    assert refused.error_code == "INVALID_SIGNATURE" and refused.reason == "strict_mode"
    big = b"x" * (64 * 1024 + 1)
    too_large = client.post("/process", content=big, headers=sign_headers(big, SECRET))
    assert too_large.status_code == 413 and _body(too_large).error_code == "REQUEST_TOO_LARGE"


def test_the_generated_secret_is_read_once_at_start(tmp_path: Path) -> None:
    """A secret file changed under a running server does not change what it accepts."""
    conf = MLSettings(webhook_secret_key=None, secret_key=None, ecg_data_dir=tmp_path)
    store = MemoryJobStore(60)
    app = create_app(conf, store=store, executor=ThreadPoolJobExecutor(conf, store, warm=False))
    started_with = (tmp_path / SECRET_FILE).read_text(encoding="utf-8").strip()
    (tmp_path / SECRET_FILE).write_text("a-different-secret", encoding="utf-8")
    with TestClient(app) as client:
        kept = client.get("/jobs/j", headers=job_headers("GET", "j", started_with))
        assert kept.status_code == 404  # verified, then unknown
        swapped = client.get("/jobs/j", headers=job_headers("GET", "j", "a-different-secret"))
        assert swapped.status_code == 401
