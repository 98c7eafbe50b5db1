"""In-process checks of issue 9's hardening: the strict-signature switch and the removal of
temp folders that dead jobs left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ecg_protocol.signing import SIGNATURE_HEADER, hex_signature
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.runner import remove_dead_temp_dirs
from ml_server.store import MemoryJobStore
from tests.support.ml_requests import job_headers
from tests.support.ml_service import SECRET, ml_settings, new_job_id, request_body


def _client(strict: bool) -> TestClient:
    conf = ml_settings(ml_webhook_strict=strict)
    store = MemoryJobStore(60)
    app = create_app(conf, store=store, executor=ThreadPoolJobExecutor(conf, store, warm=False))
    return TestClient(app)


def _legacy_only(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", SIGNATURE_HEADER: hex_signature(body, SECRET)}


def test_strict_by_default_refuses_the_legacy_header_alone() -> None:
    body = json.dumps(request_body(new_job_id(), "http://127.0.0.1:9/v", "http://127.0.0.1:9"))
    with _client(strict=True) as client:
        r = client.post("/process", content=body.encode(), headers=_legacy_only(body.encode()))
    assert r.status_code == 401 and r.json()["reason"] == "strict_mode"


def test_the_legacy_header_alone_is_accepted_only_when_strict_is_off() -> None:
    job_id = new_job_id()
    body = json.dumps(request_body(job_id, "http://127.0.0.1:9/v", "http://127.0.0.1:9")).encode()
    with _client(strict=False) as client:
        r = client.post("/process", content=body, headers=_legacy_only(body))
        assert r.status_code == 202, r.text
        # Reads still need a valid signature: a wrong one is refused, a right one answers.
        assert client.get(f"/jobs/{job_id}").status_code == 401
        assert client.get(f"/jobs/{job_id}", headers=job_headers("GET", job_id, SECRET)).is_success


def test_a_request_without_signature_headers_is_401_before_the_body() -> None:
    with _client(strict=True) as client:
        r = client.post("/process", content=b"x" * 100_000)
    assert r.status_code == 401  # not 413: refused on its headers alone


def test_temp_folders_of_dead_processes_are_removed_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f"ecg-ml-{dead}-abc"
    legacy = tmp_path / "ecg-ml-xyz123"  # named before the pid was in the name
    live = tmp_path / f"ecg-ml-{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for folder in (stale, legacy, live, other):
        folder.mkdir()
        (folder / "media.mp4").write_bytes(b"0" * 1000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with _client(strict=True):
        pass  # the lifespan ran
    assert not stale.exists() and not legacy.exists()
    assert live.exists() and other.exists()
    assert remove_dead_temp_dirs(tmp_path) == 0
