"""The backend app driven in-process for tests: explicit settings, the real app (lifespan and
all) behind httpx's ASGI transport, signed callbacks, bearer tokens.

    async for b in open_backend(make_settings(tmp_path, db_url, model_server_url=fake.url)):
        job_id = await b.start_job(headers=auth(new_user()))
        await b.callback(completed(job_id))        # tests.support.results
        (await b.status(job_id)).json()

The fixtures that hand these out (`backend`, `sqlite_backend`, `s3_backend`) are in
tests/backend/conftest.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from app.api.deps import AppContext
from app.core.config import Settings
from app.main import create_app
from ecg_protocol import sign_headers

SECRET = "backend-test-secret"
JWT_SECRET = "backend-test-jwt-secret-0123456789abcdef"
BASE_URL = "http://testserver"


def token(user: str, *, secret: str = JWT_SECRET, **claims: Any) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 600, **claims}, secret, "HS256")


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


def new_user() -> str:
    """A user of one's own, so parallel tests on the shared database never see each other."""
    return f"u{uuid.uuid4().hex[:12]}"


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Explicit settings: nothing leaks in from the environment of the test run."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "ecg_data_dir": tmp_path / "data",
        "fastapi_base_url": BASE_URL,
        "webhook_secret_key": SECRET,
        "jwt_secret": JWT_SECRET,
        "model_server_url": None,
        "s3_bucket_name": None,
        "max_upload_bytes": 1_000_000,
        "rate_limit_process": "1000/minute",
        "dispatch_retry_delays": "600",
        "ml_health_timeout": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class Backend:
    """A running app and a client for it."""

    app: Any
    client: httpx.AsyncClient
    settings: Settings

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    async def upload(
        self,
        *,
        data: bytes = b"\x00" * 1000,
        filename: str = "clip.mp4",
        content_type: str = "video/mp4",
        headers: dict[str, str] | None = None,
    ) -> str:
        """generate-url then PUT, like a client; the file key."""
        r = await self.client.post(
            "/api/upload-video/generate-url",
            json={"filename": filename, "content_type": content_type},
            headers=headers or {},
        )
        assert r.status_code == 200, r.text
        put = await self.client.put(
            r.json()["presigned_url"], content=data, headers={"Content-Type": content_type}
        )
        assert put.status_code == 200, put.text
        key: str = r.json()["file_key"]
        return key

    async def start_job(self, *, headers: dict[str, str] | None = None, **body: Any) -> str:
        key = await self.upload(headers=headers)
        r = await self.client.post(
            "/api/upload-video/request-process",
            json={"fileKey": key, **body},
            headers=headers or {},
        )
        assert r.status_code == 200, r.text
        job_id: str = r.json()["job_id"]
        return job_id

    async def callback(
        self, payload: dict[str, Any] | bytes, *, msg_id: str | None = None, **sign: Any
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = sign_headers(body, SECRET, msg_id=msg_id, **sign)
        headers["Content-Type"] = "application/json"
        return await self.client.post("/api/upload-video/result", content=body, headers=headers)

    async def status(self, job_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(f"/api/upload-video/status/{job_id}", headers=headers or {})


async def open_backend(settings: Settings) -> AsyncIterator[Backend]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield Backend(app=app, client=client, settings=settings)


async def generate(b: Backend) -> tuple[str, str]:
    """generate-url for an mp4 (no upload); (presigned URL, file key)."""
    r = await b.client.post(
        "/api/upload-video/generate-url", json={"filename": "s3.mp4", "content_type": "video/mp4"}
    )
    assert r.status_code == 200
    return r.json()["presigned_url"], r.json()["file_key"]
