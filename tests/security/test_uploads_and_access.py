"""Backend input and access control: hostile filenames and keys, oversize uploads, other users'
jobs and keys (Bearer JWT), bad tokens."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.support.security import JWT_SECRET, MAX_UPLOAD_BYTES
from tests.support.stack import Stack, short_clip

KEY_RE = re.compile(r"^videos/(anonymous|[A-Za-z0-9_.@-]+)/\d{8}_\d{6}_[0-9a-f]{8}_[^/\\]+$")

HOSTILE_NAMES = [
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "videos/alice/../../bob/x.mp4",
    "%2e%2e%2f%2e%2e%2fescape.mp4",
    "/absolute/path.mp4",
    "name\x00.mp4",
    "evil\r\nX-Injected: 1.mp4",
    "tab\tand\x1bescape.mp4",
    "\u202egnp.exe.mp4",  # right-to-left override
    "．．／fullwidth.mp4",  # NFKC folds to ../
    "..",
    "",
    "a" * 5000 + ".mp4",
]


def token(sub: str, **claims: Any) -> str:
    return jwt.encode(
        {"sub": sub, "exp": int(time.time()) + 600, **claims}, JWT_SECRET, algorithm="HS256"
    )


def auth(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


def generate(
    stack: Stack,
    filename: str,
    content_type: str = "audio/wav",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{stack.backend_url}/api/upload-video/generate-url",
        json={"filename": filename, "content_type": content_type},
        headers=headers or {},
        timeout=15,
    )


def upload(
    stack: Stack,
    data: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "audio/wav",
) -> str:
    r = generate(stack, "clip.wav", content_type, headers)
    r.raise_for_status()
    grant = r.json()
    put = httpx.put(
        grant["presigned_url"], content=data, headers={"Content-Type": content_type}, timeout=30
    )
    put.raise_for_status()
    return str(grant["file_key"])


def request_process(
    stack: Stack, key: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{stack.backend_url}/api/upload-video/request-process",
        json={"fileKey": key, "language": "en"},
        headers=headers or {},
        timeout=15,
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
def test_hostile_filenames_become_safe_keys(sec_stack: Stack, name: str) -> None:
    r = generate(sec_stack, name)
    if r.status_code >= 400:
        assert r.status_code < 500, r.text
        return
    key = r.json()["file_key"]
    assert KEY_RE.match(key), key
    assert key.startswith("videos/anonymous/")
    assert ".." not in key.split("/") and "\\" not in key
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in key)
    assert len(key) <= 1024


@pytest.mark.parametrize(
    "key",
    [
        "videos/anonymous/../../etc/passwd",
        "videos/anonymous/..%2f..%2fsecret",
        "../videos/anonymous/x.mp4",
        "/etc/passwd",
        "videos/anonymous/x\x00.mp4",
        "videos/anonymous/x\r\n.mp4",
        "videos/someone-else/20240101_120000_abcdef12_x.mp4",
        "",
    ],
    ids=repr,
)
def test_hostile_file_keys_are_refused(sec_stack: Stack, key: str) -> None:
    r = request_process(sec_stack, key)
    assert 400 <= r.status_code < 500, r.text


def test_disallowed_content_type_is_refused(sec_stack: Stack) -> None:
    for content_type in ("text/html", "application/x-sh", "image/svg+xml"):
        r = generate(sec_stack, "x.html", content_type)
        assert 400 <= r.status_code < 500, (content_type, r.text)


def test_oversize_upload_is_refused_before_any_work(sec_stack: Stack) -> None:
    key = upload(sec_stack, b"\0" * (MAX_UPLOAD_BYTES + 1))
    r = request_process(sec_stack, key)
    assert r.status_code == 413, r.text


def test_another_users_job_and_key_are_invisible(sec_stack: Stack) -> None:
    alice, bob = auth("alice"), auth("bob")
    key = upload(sec_stack, short_clip().read_bytes(), alice)
    assert key.startswith("videos/alice/")

    # Bob cannot process Alice's upload, anonymous neither; both see "not found".
    assert request_process(sec_stack, key, bob).status_code == 404
    assert request_process(sec_stack, key).status_code == 404

    started = request_process(sec_stack, key, alice)
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]
    base = sec_stack.backend_url
    status_url = f"{base}/api/upload-video/status/{job_id}"
    assert httpx.get(status_url, headers=alice, timeout=10).status_code == 200
    for who in (bob, {}):
        assert httpx.get(status_url, headers=who, timeout=10).status_code == 404
        assert httpx.delete(f"{base}/api/jobs/{job_id}", headers=who, timeout=10).status_code == 404
        listed = httpx.get(f"{base}/api/jobs", headers=who, timeout=10)
        assert listed.status_code == 200 and job_id not in listed.text
    # Alice's job survived Bob's delete attempt.
    assert httpx.get(status_url, headers=alice, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        jwt.encode(
            {"sub": "alice"}, "not-the-secret-but-long-enough-to-be-a-key!", algorithm="HS256"
        ),
        jwt.encode({"sub": "alice", "exp": int(time.time()) - 60}, JWT_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "alice"}, key="", algorithm="none"),
        jwt.encode({"sub": "../bob"}, JWT_SECRET, algorithm="HS256"),
        jwt.encode({"sub": "anonymous"}, JWT_SECRET, algorithm="HS256"),
        jwt.encode({"user": "alice"}, JWT_SECRET, algorithm="HS256"),
        "not.a.token",
    ],
    ids=["forged", "expired", "alg-none", "traversal-sub", "anonymous-sub", "no-sub", "garbage"],
)
def test_bad_tokens_are_refused(sec_stack: Stack, bad: str) -> None:
    r = httpx.get(
        f"{sec_stack.backend_url}/api/upload-video/status/{uuid.uuid4()}",
        headers={"Authorization": f"Bearer {bad}"},
        timeout=10,
    )
    assert r.status_code == 401, r.text
