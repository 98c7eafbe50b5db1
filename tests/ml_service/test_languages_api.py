"""The ML server's language answers: `/languages` and `/health` list what the configured ASR
model transcribes, and `/process` refuses, before queueing anything, a code no model knows or
one the model (or ML_LANGUAGES) does not allow: 400 UNSUPPORTED_LANGUAGE."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ecg_protocol import sign_headers
from ml_server.config import BUNDLED_ENGLISH_ASR, MLSettings
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.store import MemoryJobStore
from tests.support.ml_service import SECRET


def _client(**settings: str) -> Iterator[TestClient]:
    conf = MLSettings(webhook_secret_key=SECRET, ml_allowed_private_hosts="127.0.0.1", **settings)
    store = MemoryJobStore(60)
    executor = ThreadPoolJobExecutor(conf, store, warm=False)
    with TestClient(create_app(conf, store=store, executor=executor)) as client:
        yield client


@pytest.fixture(scope="module")
def restricted() -> Iterator[TestClient]:
    """The default multilingual model, narrowed to Korean and English by ML_LANGUAGES."""
    yield from _client(ml_languages="ko, en")


@pytest.fixture(scope="module")
def english_only() -> Iterator[TestClient]:
    yield from _client(ml_asr_model=BUNDLED_ENGLISH_ASR)


@pytest.fixture(scope="module")
def default() -> Iterator[TestClient]:
    yield from _client()


def _process(client: TestClient, language: str) -> tuple[int, dict[str, str]]:
    body = json.dumps(
        {
            "job_id": "lang-test",
            "video_url": "http://example.com/v.mp4",
            "fastapi_base_url": "http://example.com",
            "language": language,
        }
    ).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    response = client.post("/process", content=body, headers=headers)
    doc: dict[str, str] = response.json()
    return response.status_code, doc


def test_default_model_lists_every_whisper_language(default: TestClient) -> None:
    doc = default.get("/languages").json()
    codes = [entry["code"] for entry in doc["languages"]]
    assert len(codes) == 100 and {"ko", "en", "ja", "hi"} <= set(codes)
    assert {"code": "ko", "name": "Korean"} in doc["languages"]
    assert doc["english_model"] == BUNDLED_ENGLISH_ASR
    assert default.get("/health").json()["languages"] == codes


def test_ml_languages_narrows_what_is_offered(restricted: TestClient) -> None:
    assert restricted.get("/health").json()["languages"] == ["ko", "en"]
    assert [e["code"] for e in restricted.get("/languages").json()["languages"]] == ["ko", "en"]


@pytest.mark.parametrize(
    ("fixture", "language", "named"),
    [
        ("default", "xx", "'xx'"),  # no such code
        ("default", "ko,qq", "'qq'"),  # one bad code in a list
        ("english_only", "ko", "ko"),  # an English-only model cannot transcribe Korean
        ("english_only", "en,fr", "fr"),
        ("restricted", "ja", "ja"),  # outside ML_LANGUAGES
    ],
)
def test_unsupported_language_is_refused_with_400(
    request: pytest.FixtureRequest, fixture: str, language: str, named: str
) -> None:
    client: TestClient = request.getfixturevalue(fixture)
    status, doc = _process(client, language)
    assert status == 400, doc
    assert doc["error_code"] == "UNSUPPORTED_LANGUAGE"
    assert named in doc["detail"]


def test_english_only_model_offers_english_alone(english_only: TestClient) -> None:
    assert english_only.get("/health").json()["languages"] == ["en"]
