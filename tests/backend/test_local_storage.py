"""Embedded local storage: backend-signed upload/download URLs, expiry, tampering, limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from app.services.errors import FileTooLarge, InvalidInput
from app.services.local_storage import LocalStorage
from app.services.storage import is_safe_key, make_file_key, sanitize_filename
from tests.support.backend import Backend


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


async def issue(b: Backend, content_type: str = "video/mp4") -> tuple[str, str]:
    r = await b.client.post(
        "/api/upload-video/generate-url", json={"filename": "a.mp4", "content_type": content_type}
    )
    return r.json()["presigned_url"], r.json()["file_key"]


async def test_upload_then_download_roundtrip(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    url, key = await issue(b)
    payload = bytes(range(256)) * 40
    r = await b.client.put(url, content=payload, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 200 and r.json()["size"] == len(payload)
    info = await b.ctx.storage.head_object(key)
    assert info is not None and info.size == len(payload) and info.content_type == "video/mp4"
    download = b.ctx.storage.generate_download_url(key)
    got = await b.client.get(download)
    assert got.status_code == 200 and got.content == payload
    assert got.headers["content-type"] == "video/mp4"


async def test_wrong_content_type_is_refused(sqlite_backend: Backend) -> None:
    url, _ = await issue(sqlite_backend)
    for ct in ("video/webm", "text/html", ""):
        r = await sqlite_backend.client.put(url, content=b"x", headers={"Content-Type": ct})
        assert r.status_code == 403, ct


@pytest.mark.parametrize("field", ["sig", "expires"])
async def test_tampered_url_is_refused(sqlite_backend: Backend, field: str) -> None:
    url, _ = await issue(sqlite_backend)
    value = "0" * 64 if field == "sig" else str(int(time.time()) + 10**6)
    r = await sqlite_backend.client.put(
        with_query(url, **{field: value}), content=b"x", headers={"Content-Type": "video/mp4"}
    )
    assert r.status_code == 403


async def test_url_for_one_key_cannot_write_another(sqlite_backend: Backend) -> None:
    url, key = await issue(sqlite_backend)
    other = url.replace(key, key.replace("a.mp4", "b.mp4"))
    r = await sqlite_backend.client.put(other, content=b"x", headers={"Content-Type": "video/mp4"})
    assert r.status_code == 403
    # The upload URL is not a download URL either.
    assert (await sqlite_backend.client.get(url)).status_code == 403


async def test_missing_signature_is_refused(sqlite_backend: Backend) -> None:
    _, key = await issue(sqlite_backend)
    r = await sqlite_backend.client.put(
        f"/storage/{key}", content=b"x", headers={"Content-Type": "video/mp4"}
    )
    assert r.status_code == 403


async def test_expired_url_is_refused(sqlite_backend: Backend) -> None:
    storage = sqlite_backend.ctx.storage
    _, key = await issue(sqlite_backend)
    url = storage.generate_presigned_url(key, "video/mp4", expires_in=-5)
    r = await sqlite_backend.client.put(url, content=b"x", headers={"Content-Type": "video/mp4"})
    assert r.status_code == 403 and "expired" in r.json()["detail"]


async def test_size_limit_enforced_while_streaming(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    url, key = await issue(b)
    limit = b.settings.max_upload_bytes

    async def body() -> AsyncIterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"\x00" * 65536

    r = await b.client.put(url, content=body(), headers={"Content-Type": "video/mp4"})
    assert r.status_code == 413
    assert await b.ctx.storage.head_object(key) is None
    assert isinstance(b.ctx.storage, LocalStorage)
    leftovers = [p for p in b.ctx.storage.objects.rglob("*") if p.is_file()]
    assert leftovers == []


async def test_download_of_missing_object_is_404(sqlite_backend: Backend) -> None:
    url = sqlite_backend.ctx.storage.generate_download_url("videos/anonymous/nothing.mp4")
    assert (await sqlite_backend.client.get(url)).status_code == 404


@pytest.mark.parametrize(
    "key",
    [
        "../outside",
        "videos/../../x",
        "/abs/path",
        "videos//x",
        "videos/a\\b",
        "videos/%2e%2e/x",
        "videos/x\x00y",
        ".",
        "videos/./x",
    ],
)
def test_path_traversal_impossible(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(root=tmp_path, base_url="http://x", secret="s", max_bytes=10)
    assert not is_safe_key(key)
    with pytest.raises(InvalidInput):
        storage.path_for(key)
    with pytest.raises(InvalidInput):
        storage.generate_presigned_url(key, "video/mp4")


async def test_traversal_through_the_route(sqlite_backend: Backend) -> None:
    for path in ("/storage/..%2F..%2Fetc%2Fpasswd", "/storage/videos/%2e%2e/%2e%2e/secret"):
        r = await sqlite_backend.client.get(path + "?expires=9999999999&sig=x")
        assert r.status_code in (400, 403, 404)


async def test_write_stream_direct_limit(tmp_path: Path) -> None:
    storage = LocalStorage(root=tmp_path, base_url="http://x", secret="s", max_bytes=10)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"12345"
        yield b"678901"

    with pytest.raises(FileTooLarge):
        await storage.write_stream("videos/a/x.mp4", "video/mp4", chunks())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("video.mp4", "video.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.MOV", "clip.MOV"),
        ("name with spaces & stuff!.mp4", "name_with_spaces_stuff.mp4"),
        ("\x00\x1f\x7f", "video"),
        ("...", "video"),
        ("한국어 영상.mp4", "video.mp4"),
        (".hidden.mp4", "hidden.mp4"),
        ("archive.tar.gz", "archive.tar.gz"),
        ("noext", "noext"),
        ("weird.ext!!", "weird.ext"),
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_caps_length_keeping_extension() -> None:
    name = sanitize_filename("a" * 500 + ".mp4")
    assert len(name) <= 120 and name.endswith(".mp4")
    key = make_file_key("anonymous", "x" * 1000)
    assert is_safe_key(key)
