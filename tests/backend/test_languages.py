"""Languages at the backend: request-process refuses a code no model knows (400
UNSUPPORTED_LANGUAGE, no job), keeps lists in one spelling, and a job whose language the ML
server's model cannot transcribe fails at dispatch with UNSUPPORTED_LANGUAGE (the real ML app
answering the real client)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from app.models.job import Job
from app.services.ml_client import MLClient, MLRequestError, process_message_id
from ecg_protocol import ErrorCode, ProcessRequest
from ml_server.config import BUNDLED_ENGLISH_ASR, MLSettings
from ml_server.executor import ThreadPoolJobExecutor
from ml_server.main import create_app
from ml_server.store import MemoryJobStore
from tests.support.backend import Backend

SECRET = "language-test-secret-0123456789abcdef"


async def _jobs(b: Backend) -> int:
    async with b.ctx.session_factory() as s:
        return int((await s.execute(select(func.count()).select_from(Job))).scalar_one())


@pytest.mark.parametrize("language", ["xx", "ko,xx", "klingon"])
async def test_unknown_language_is_400_without_a_job(
    sqlite_backend: Backend, language: str
) -> None:
    key = await sqlite_backend.upload()
    before = await _jobs(sqlite_backend)
    r = await sqlite_backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": key, "language": language}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "UNSUPPORTED_LANGUAGE" and "unknown language" in r.json()["detail"]
    assert await _jobs(sqlite_backend) == before


@pytest.mark.parametrize(
    ("language", "stored"),
    [("KO, en", "ko,en"), ("zh-CN", "zh"), ("auto", "auto"), ("ja,ja", "ja")],
)
async def test_languages_are_stored_in_one_spelling(
    sqlite_backend: Backend, language: str, stored: str
) -> None:
    job_id = await sqlite_backend.start_job(language=language)
    async with sqlite_backend.ctx.session_factory() as s:
        job = (await s.execute(select(Job).where(Job.job_id == uuid.UUID(job_id)))).scalar_one()
    assert job.language == stored


@pytest.fixture
async def english_only_ml() -> AsyncIterator[httpx.AsyncClient]:
    """The real ML server app with an English-only model, served in-process."""
    conf = MLSettings(webhook_secret_key=SECRET, ml_asr_model=BUNDLED_ENGLISH_ASR)
    store = MemoryJobStore(60)
    app = create_app(conf, store=store, executor=ThreadPoolJobExecutor(conf, store, warm=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ml.test") as http:
            yield http


async def test_ml_refusal_fails_the_job_unsupported_language(
    english_only_ml: httpx.AsyncClient,
) -> None:
    jid = uuid.uuid4()
    request = ProcessRequest(
        job_id=str(jid),
        video_url="http://storage.test/v.mp4",
        fastapi_base_url="http://storage.test",
        language="ko",
    )
    client = MLClient(base_url="http://ml.test", http=english_only_ml, secret=SECRET, timeout_s=5)
    with pytest.raises(MLRequestError) as info:
        await client.process(request, msg_id=process_message_id(jid, 0))
    assert info.value.code is ErrorCode.UNSUPPORTED_LANGUAGE and not info.value.retryable
    assert "ko" in info.value.message
