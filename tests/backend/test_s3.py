"""S3Service against a real SeaweedFS with SigV4 auth on: presigned PUT/GET, content-type
binding, tampering and expiry, HEAD sizes; and the backend's whole upload flow on S3."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.models.job import Job
from app.services.s3_service import S3Service
from tests.support.backend import Backend, generate, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port as pick_free_port
from tests.support.seaweed import SeaweedS3


@pytest.fixture
def s3(seaweed: SeaweedS3) -> S3Service:
    return S3Service(
        bucket=seaweed.buckets[0],
        region=seaweed.region,
        access_key_id=seaweed.access_key,
        secret_access_key=seaweed.secret_key,
        endpoint_url=seaweed.endpoint,
        expires_in=600,
    )


def fresh_key() -> str:
    return f"videos/anonymous/{uuid.uuid4().hex}_clip.mp4"


async def test_presigned_put_then_head_and_download(s3: S3Service) -> None:
    key = fresh_key()
    url = s3.generate_presigned_url(key, "video/mp4")
    async with httpx.AsyncClient() as http:
        r = await http.put(url, content=b"v" * 1234, headers={"Content-Type": "video/mp4"})
        assert r.status_code == 200, r.text
        info = await s3.head_object(key)
        assert info is not None and info.size == 1234 and info.content_type == "video/mp4"
        assert await s3.check_file_exists(key)
        got = await http.get(s3.generate_download_url(key))
        assert got.status_code == 200 and got.content == b"v" * 1234
    await s3.delete_object(key)
    assert not await s3.check_file_exists(key)


async def test_missing_object_is_none(s3: S3Service) -> None:
    assert await s3.head_object(fresh_key()) is None


async def test_presigned_put_binds_content_type_and_key(s3: S3Service) -> None:
    key = fresh_key()
    url = s3.generate_presigned_url(key, "video/mp4")
    async with httpx.AsyncClient() as http:
        r = await http.put(url, content=b"x", headers={"Content-Type": "text/html"})
        assert r.status_code == 403
        r = await http.put(
            url.replace(key, fresh_key()), content=b"x", headers={"Content-Type": "video/mp4"}
        )
        assert r.status_code == 403
        r = await http.put(
            url.replace("X-Amz-Signature=", "X-Amz-Signature=0"),
            content=b"x",
            headers={"Content-Type": "video/mp4"},
        )
        assert r.status_code == 403
    assert await s3.head_object(key) is None


async def test_unsigned_requests_are_refused(seaweed: SeaweedS3) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.put(f"{seaweed.endpoint}/{seaweed.buckets[0]}/videos/x.mp4", content=b"x")
        assert r.status_code == 403


async def test_presigned_url_expires(s3: S3Service) -> None:
    key = fresh_key()
    url = s3.generate_presigned_url(key, "video/mp4", expires_in=1)
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient() as http:
        while True:
            r = await http.put(url, content=b"x", headers={"Content-Type": "video/mp4"})
            if r.status_code == 403:
                break
            assert time.monotonic() < deadline, "presigned URL never expired"
            await s3.delete_object(key)
            await asyncio.sleep(0.5)


async def test_backend_flow_on_s3(s3_backend: Backend, fake_ml: FakeMLServer) -> None:
    b = s3_backend
    assert b.ctx.storage.kind == "s3"
    url, key = await generate(b)
    assert url.startswith(b.settings.s3_endpoint_url or "")
    async with httpx.AsyncClient() as http:
        put = await http.put(url, content=b"\x00" * 2000, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200
    r = await b.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert r.status_code == 200
    job_id = r.json()["job_id"]
    # The ML server is handed a presigned GET it can really download with.
    deadline = time.monotonic() + 10
    while not fake_ml.process_requests(job_id):
        assert time.monotonic() < deadline, "job was never dispatched"
        await asyncio.sleep(0.05)
    video_url = fake_ml.jobs[job_id].request.video_url
    async with httpx.AsyncClient() as http:
        got = await http.get(video_url)
    assert got.status_code == 200 and len(got.content) == 2000


async def test_oversize_s3_object_refused_not_dispatched(
    s3_backend: Backend, fake_ml: FakeMLServer
) -> None:
    b = s3_backend
    url, key = await generate(b)
    async with httpx.AsyncClient() as http:
        put = await http.put(url, content=b"\x00" * 5000, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200  # S3 does not know our limit; request-process does
    r = await b.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert r.status_code == 413
    assert "4000" in r.json()["detail"]
    async with b.ctx.session_factory() as s:
        n = (await s.execute(select(func.count()).select_from(Job))).scalar_one()
    assert n == 0
    assert fake_ml.process_requests() == []


async def test_unknown_key_on_s3_is_404(s3_backend: Backend) -> None:
    r = await s3_backend.client.post(
        "/api/upload-video/request-process",
        json={"fileKey": f"videos/anonymous/{uuid.uuid4().hex}_nothing.mp4"},
    )
    assert r.status_code == 404


async def test_s3_outage_is_503_and_creates_no_job(
    sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer
) -> None:
    # An endpoint nothing listens on: the object store is down, the request is not at fault.
    settings = make_settings(
        tmp_path,
        sqlite_url,
        model_server_url=fake_ml.url,
        s3_bucket_name="ecg-down",
        s3_endpoint_url=f"http://127.0.0.1:{pick_free_port()}",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )
    async for b in open_backend(settings):
        r = await b.client.post(
            "/api/upload-video/request-process",
            json={"fileKey": "videos/anonymous/20240101_120000_abcdef12_video.mp4"},
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "STORAGE_UNAVAILABLE"
        assert r.headers["retry-after"] == "5"
        async with b.ctx.session_factory() as s:
            n = (await s.execute(select(func.count()).select_from(Job))).scalar_one()
        assert n == 0
        assert fake_ml.process_requests() == []
