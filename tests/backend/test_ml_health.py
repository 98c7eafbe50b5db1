"""`GET /api/upload-video/ml-server/health`: healthy, down, slow, erroring, unconfigured."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from ecg_protocol import ErrorBody, MLServerHealth
from tests.support.backend import Backend, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port

HEALTHY = MLServerHealth(
    models_loaded=True, queue_depth=0, running=0, workers=1, version="test", languages=["en"]
)


class HealthStub:
    """A real HTTP server whose /health can be slow or failing."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.status = 200
        self.body: object = HEALTHY.model_dump(mode="json")
        self.port = free_port()
        app = FastAPI()

        @app.get("/health")
        async def health() -> JSONResponse:
            await asyncio.sleep(self.delay_s)
            return JSONResponse(self.body, self.status)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HealthStub:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "health stub did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def stub() -> Iterator[HealthStub]:
    with HealthStub() as s:
        yield s


@pytest.fixture
async def health_backend(
    stub: HealthStub, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[Backend]:
    settings = make_settings(tmp_path, sqlite_url, model_server_url=stub.url, ml_health_timeout=0.5)
    async for b in open_backend(settings):
        yield b


PATH = "/api/upload-video/ml-server/health"


async def test_healthy(health_backend: Backend, stub: HealthStub) -> None:
    r = await health_backend.client.get(PATH)
    assert r.status_code == 200
    data = r.json()
    assert data["status"] == "healthy" and data["ml_server_url"] == stub.url
    assert data["http_status"] == 200 and data["response"] == "ML Server is running"
    assert data["response_time_ms"] >= 0
    assert data["languages"] == ["en"] and data["queue_depth"] == 0


async def test_slow_is_unhealthy(health_backend: Backend, stub: HealthStub) -> None:
    stub.delay_s = 2.0
    started = time.monotonic()
    r = await health_backend.client.get(PATH)
    assert time.monotonic() - started < 1.9
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy" and "Timeout" in r.json()["error"]


async def test_erroring_is_unhealthy(health_backend: Backend, stub: HealthStub) -> None:
    stub.status = 500
    r = await health_backend.client.get(PATH)
    assert r.status_code == 503 and r.json()["http_status"] == 500


async def test_down_is_unhealthy(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, model_server_url=f"http://127.0.0.1:{free_port()}"
    )
    async for b in open_backend(settings):
        r = await b.client.get(PATH)
        assert r.status_code == 503
        assert r.json()["status"] == "unhealthy" and "Connect" in r.json()["error"]


async def test_unconfigured_is_unhealthy(sqlite_url: str, tmp_path: Path) -> None:
    async for b in open_backend(make_settings(tmp_path, sqlite_url)):
        r = await b.client.get(PATH)
        assert r.status_code == 503 and r.json()["status"] == "unhealthy"


async def test_fake_ml_server_health(sqlite_backend: Backend, fake_ml: FakeMLServer) -> None:
    r = await sqlite_backend.client.get(PATH)
    assert r.status_code == 200 and r.json()["status"] == "healthy"


class PlainHealth:
    """The guide's ML server: `/health` answers 200 with a plain body (its check is
    `response.status == 200`)."""

    def __init__(self, body: bytes, media_type: str) -> None:
        self.port = free_port()
        app = FastAPI()

        @app.get("/health")
        async def health() -> Response:
            return Response(body, 200, media_type=media_type)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.mark.parametrize(
    ("body", "media_type", "said"),
    [
        (b'"ML Server is running"', "application/json", "ML Server is running"),
        (b"ML Server is running", "text/plain", "ML Server is running"),
        (b'{"status":"ok"}', "application/json", "ok"),
        (b'{"status":"ok","message":"ML Server is running"}', "application/json", None),
        (b"", "text/plain", ""),
    ],
)
async def test_a_guide_era_ml_server_is_healthy(
    sqlite_url: str, tmp_path: Path, body: bytes, media_type: str, said: str | None
) -> None:
    """Any 200 is healthy; only our richer `MLServerHealth` adds languages and queue depth."""
    plain = PlainHealth(body, media_type)
    plain.thread.start()
    try:
        deadline = time.monotonic() + 10
        while not plain.server.started:
            assert time.monotonic() < deadline, "plain health server did not start"
            await asyncio.sleep(0.01)
        settings = make_settings(
            tmp_path, sqlite_url, model_server_url=f"http://127.0.0.1:{plain.port}"
        )
        async for b in open_backend(settings):
            r = await b.client.get(PATH)
            assert r.status_code == 200, r.text
            data = r.json()
            assert data["status"] == "healthy" and data["http_status"] == 200
            assert data["response"] == (said if said is not None else "ML Server is running")
            assert data.get("languages") is None and data.get("queue_depth") is None
            assert "error" not in data
    finally:
        plain.server.should_exit = True
        plain.thread.join(timeout=10)


async def test_a_richer_answer_with_a_bad_extra_is_still_healthy(
    health_backend: Backend, stub: HealthStub
) -> None:
    """A 200 whose extras do not parse is healthy; the extras are left out, not guessed."""
    stub.body = {**HEALTHY.model_dump(mode="json"), "queue_depth": "many"}
    r = await health_backend.client.get(PATH)
    assert r.status_code == 200
    assert r.json()["status"] == "healthy" and r.json().get("languages") is None


async def test_refusal_reads_the_error_body(health_backend: Backend, stub: HealthStub) -> None:
    stub.status = 503
    stub.body = ErrorBody(detail="shutting down", error_code="ML_SERVER_ERROR").model_dump(
        exclude_none=True
    )
    r = await health_backend.client.get(PATH)
    assert r.status_code == 503
    assert r.json()["response"] == "shutting down"
    assert r.json()["error"] == "ML server answered HTTP 503"
