"""generate-url and request-process: the happy path and every bad input (clear 4xx, no job)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import func, select

from app.models.job import Job
from tests.support.backend import Backend, auth, new_user, token

OTHER_SECRET = "wrong-secret-0123456789abcdef-0123"


async def job_count(b: Backend) -> int:
    async with b.ctx.session_factory() as s:
        return int((await s.execute(select(func.count()).select_from(Job))).scalar_one())


async def test_generate_url_shape_and_key_format(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.post(
        "/api/upload-video/generate-url",
        json={"filename": "../../etc/My Video\x07.mp4", "content_type": "video/mp4"},
    )
    assert r.status_code == 200
    data = r.json()
    assert set(data) == {"presigned_url", "file_key", "expires_in", "url", "fileKey"}
    assert data["url"] == data["presigned_url"] and data["fileKey"] == data["file_key"]
    assert data["expires_in"] == 3600
    parts = data["file_key"].split("/")
    assert parts[:2] == ["videos", "anonymous"] and len(parts) == 3
    stamp_date, stamp_time, rand, name = parts[2].split("_", 3)
    assert len(stamp_date) == 8 and len(stamp_time) == 6 and len(rand) == 8
    assert name == "My_Video.mp4", name


async def test_generate_url_user_prefix(sqlite_backend: Backend) -> None:
    user = new_user()
    r = await sqlite_backend.client.post(
        "/api/upload-video/generate-url",
        json={"filename": "a.mov", "content_type": "video/quicktime"},
        headers=auth(user),
    )
    assert r.status_code == 200
    assert r.json()["file_key"].startswith(f"videos/{user}/")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"filename": "a.exe", "content_type": "application/x-msdownload"}, 415),
        ({"filename": "a.html", "content_type": "text/html"}, 415),
        ({"filename": "a.mp4"}, 422),
        ({"content_type": "video/mp4"}, 422),
        ({"filename": "", "content_type": "video/mp4"}, 422),
    ],
)
async def test_generate_url_bad_input(
    sqlite_backend: Backend, body: dict[str, str], status: int
) -> None:
    r = await sqlite_backend.client.post("/api/upload-video/generate-url", json=body)
    assert r.status_code == status
    assert r.json()["detail"]


async def test_generate_url_malformed_json(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.post(
        "/api/upload-video/generate-url",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422


async def test_request_process_creates_pending_job_and_dispatches(backend: Backend) -> None:
    user = new_user()
    job_id = await backend.start_job(headers=auth(user), language="en", min_speakers=1)
    assert uuid.UUID(job_id).version == 4
    async with backend.ctx.session_factory() as s:
        job = (await s.execute(select(Job).where(Job.job_id == uuid.UUID(job_id)))).scalar_one()
    assert job.owner == user and job.language == "en"
    assert job.options == {"min_speakers": 1}
    assert job.file_key and job.file_key.startswith(f"videos/{user}/")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"fileKey": ""}, 422),
        ({"fileKey": "videos/anonymous/20240101_000000_abcdef12_missing.mp4"}, 404),
        ({"fileKey": "videos/someone-else/20240101_000000_abcdef12_x.mp4"}, 404),
        ({"fileKey": "videos/anonymous/../../etc/passwd"}, 400),
        ({"fileKey": "/etc/passwd"}, 400),
        ({"fileKey": "videos/anonymous/x.mp4", "language": "e n;drop"}, 422),
        ({"fileKey": "videos/anonymous/x.mp4", "min_speakers": 0}, 422),
        ({"fileKey": "videos/anonymous/x.mp4", "max_speakers": "many"}, 422),
    ],
)
async def test_request_process_bad_input(
    sqlite_backend: Backend, body: dict[str, object], status: int
) -> None:
    before = await job_count(sqlite_backend)
    r = await sqlite_backend.client.post("/api/upload-video/request-process", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert detail
    # 422 is request validation (FastAPI's list); every other refusal a sentence and a code.
    assert isinstance(detail, list) if status == 422 else isinstance(detail, str)
    assert await job_count(sqlite_backend) == before


async def test_request_process_min_over_max(sqlite_backend: Backend) -> None:
    key = await sqlite_backend.upload()
    r = await sqlite_backend.client.post(
        "/api/upload-video/request-process",
        json={"fileKey": key, "min_speakers": 3, "max_speakers": 2},
    )
    assert r.status_code == 400  # well-formed but unacceptable; 422 is schema validation
    assert r.json()["error"] == "INVALID_INPUT" and "min_speakers" in r.json()["detail"]


async def test_foreign_file_key_is_not_found(backend: Backend) -> None:
    alice, bob = new_user(), new_user()
    key = await backend.upload(headers=auth(alice))
    before = await job_count(backend)
    for headers in (auth(bob), {}):
        r = await backend.client.post(
            "/api/upload-video/request-process", json={"fileKey": key}, headers=headers
        )
        assert r.status_code == 404
    assert await job_count(backend) == before


async def test_oversize_object_is_refused_without_a_job(backend: Backend) -> None:
    # The object got in under a bigger limit (or straight into the bucket); the check at
    # request-process is what stops it being dispatched.
    key = await backend.upload(data=b"\x00" * 5000)
    backend.ctx.settings.max_upload_bytes = 4000
    before = await job_count(backend)
    r = await backend.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert r.status_code == 413
    assert "limit" in r.json()["detail"] and r.json()["max_bytes"] == 4000
    assert await job_count(backend) == before


async def test_empty_object_is_refused(sqlite_backend: Backend) -> None:
    key = await sqlite_backend.upload(data=b"")
    r = await sqlite_backend.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert r.status_code == 400 and r.json()["error"] == "INVALID_INPUT"


async def test_idempotency_key_returns_the_same_job(backend: Backend) -> None:
    user = new_user()
    key = await backend.upload(headers=auth(user))
    headers = {**auth(user), "Idempotency-Key": "abc-123"}
    first = await backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": key}, headers=headers
    )
    second = await backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": key}, headers=headers
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["job_id"] == second.json()["job_id"]
    other = await backend.client.post(
        "/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth(user), "Idempotency-Key": "abc-124"},
    )
    assert other.json()["job_id"] != first.json()["job_id"]


async def test_rate_limit_429_with_retry_after(sqlite_backend: Backend) -> None:
    from app.services.rate_limit import ProcessLimiter

    sqlite_backend.ctx.process_limiter = ProcessLimiter("5/minute")
    key = await sqlite_backend.upload()
    cap = (await sqlite_backend.client.get("/api/upload-video/capacity")).json()
    assert cap == {"limited": True, "limit": 5, "remaining": 5, "window_s": 60, "retry_after_s": 0}
    codes = []
    for _ in range(6):
        r = await sqlite_backend.client.post(
            "/api/upload-video/request-process", json={"fileKey": key}
        )
        codes.append(r.status_code)
    assert codes == [200] * 5 + [429]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["error"] == "RATE_LIMITED"
    # A client can see that before uploading: nothing left, and how long to wait.
    full = await sqlite_backend.client.get("/api/upload-video/capacity")
    assert full.json()["remaining"] == 0
    assert 1 <= full.json()["retry_after_s"] == int(full.headers["Retry-After"]) <= 60


async def test_invalid_tokens_are_401(sqlite_backend: Backend) -> None:
    c = sqlite_backend.client
    bad = [
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {token('mallory', secret=OTHER_SECRET)}"},
        {"Authorization": f"Bearer {token('mallory', exp=1)}"},
        {"Authorization": f"Bearer {token('../../etc')}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    # An injected route (CurrentUser) and the status route, which authenticates without
    # dependency injection (its measured fast path): the same refusals from both.
    routes = [
        ("POST", "/api/upload-video/generate-url"),
        ("GET", f"/api/upload-video/status/{uuid.uuid4()}"),
    ]
    for (method, url), headers in itertools.product(routes, bad):
        body = {"filename": "a.mp4", "content_type": "video/mp4"} if method == "POST" else None
        r = await c.request(method, url, json=body, headers=headers)
        assert r.status_code == 401, (url, headers)
        assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_anonymous_can_be_switched_off(sqlite_backend: Backend) -> None:
    sqlite_backend.ctx.settings.allow_anonymous = False
    r = await sqlite_backend.client.post(
        "/api/upload-video/generate-url", json={"filename": "a.mp4", "content_type": "video/mp4"}
    )
    assert r.status_code == 401
    # The status route (no dependency injection) refuses the anonymous caller too.
    assert (await sqlite_backend.status(str(uuid.uuid4()))).status_code == 401
    r = await sqlite_backend.client.post(
        "/api/upload-video/generate-url",
        json={"filename": "a.mp4", "content_type": "video/mp4"},
        headers=auth(new_user()),
    )
    assert r.status_code == 200


async def test_idempotency_key_reused_for_another_file_is_409(sqlite_backend: Backend) -> None:
    headers = {"Idempotency-Key": "same-key"}
    first = await sqlite_backend.upload()
    second = await sqlite_backend.upload()
    r = await sqlite_backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": first}, headers=headers
    )
    assert r.status_code == 200
    r = await sqlite_backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": second}, headers=headers
    )
    assert r.status_code == 409
