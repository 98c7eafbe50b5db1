"""The attacks of issue 23 kept as regressions, against a real `ecg backend` process (sign-in
required, PostgreSQL, SeaweedFS S3; the ML server is the test fake, in this process).

Nothing is read before it is authorised (`/v1/audio/*` checks the token and the rate limit
before the upload), names and words cannot break caption files, absurd times are refused at the
schema, and the page and API carry the headers a browser expects.
"""

from __future__ import annotations

import json
import re
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pysubs2
import pytest

from ecg_protocol import sign_headers
from ecg_protocol.signing import hex_signature
from tests.support.backend import SECRET as BACKEND_SECRET
from tests.support.backend import Backend as InProcessBackend
from tests.support.backend import make_settings, open_backend
from tests.support.caption_parsers import parse_srt, parse_vtt, strip_tags, vtt_voice
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.pg import create_database, drop_database
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.raw_http import MB, raw_post
from tests.support.seaweed import SeaweedS3

SECRET = "round-two-secret"
JWT_SECRET = "round-two-jwt-secret-0123456789abcdef"
WEBHOOK = "/api/upload-video/result"
TRANSCRIBE = "/v1/audio/transcriptions"


@dataclass
class Backend:
    """The backend under attack (sign-in required) and the fake ML server behind it."""

    proc: ManagedProcess
    port: int
    fake: FakeMLServer
    _ips: Iterator[int] = field(default_factory=lambda: iter(range(1, 250)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_ip(self) -> str:
        """A client address of the test's own (the rate limit counts per address)."""
        return f"203.0.113.{next(self._ips)}"


def token(sub: str, *, lifetime_s: int | None = 600, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": sub, **claims}
    if lifetime_s is not None:
        body["exp"] = int(time.time()) + lifetime_s
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def auth(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp("round2")
    pg_url, db_name = create_database("ecg_round2")
    port = free_port()
    fake = FakeMLServer(secret=SECRET).start()
    env = {
        "DATABASE_URL": pg_url,
        **seaweed.settings_env(),
        "MODEL_SERVER_URL": fake.url,
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET_KEY": SECRET,
        "JWT_SECRET": JWT_SECRET,
        "ALLOW_ANONYMOUS": "false",
        "ECG_DATA_DIR": str(root / "data"),
        "RATE_LIMIT_PROCESS": "2/minute",
        "TRUST_FORWARDED_FOR": "true",
        "SYNC_WAIT_TIMEOUT_S": "5",
        "DISPATCH_POLL_INTERVAL_S": "0.2",
    }
    proc = ManagedProcess(
        ecg_command("backend", "--port", str(port)),
        env=env,
        log_path=root / "backend.log",
        name="backend",
    ).start()
    try:
        proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
        yield Backend(proc=proc, port=port, fake=fake)
    finally:
        proc.stop()
        fake.stop()
        drop_database(db_name)


# ------------------------------------------------------------ /v1: authorised before it is read

MULTIPART = "multipart/form-data; boundary=ecg-round-two"


def test_v1_bad_token_is_refused_before_the_upload(backend: Backend) -> None:
    """Issue 23 #2: 400 MB with a bad token was read whole (spooled to the temp dir), then 401."""
    for bad in ("Bearer not-a-token", f"Bearer {token('alice', lifetime_s=None)}", ""):
        headers = {"Authorization": bad} if bad else {}
        status, sent = raw_post(
            backend.port, TRANSCRIBE, headers=headers, size=300 * MB, chunked=False,
            content_type=MULTIPART,
        )  # fmt: skip
        assert status == 401, (bad, status)
        assert sent < 50 * MB, f"{sent / MB:.0f} MB went out before the 401"


def _transcribe_empty(backend: Backend, headers: dict[str, str]) -> httpx.Response:
    """An empty file through /v1/audio/transcriptions."""
    return httpx.post(
        f"{backend.url}{TRANSCRIBE}",
        headers=headers,
        files={"file": ("empty.wav", b"", "audio/wav")},
        data={"model": "whisper-1"},
        timeout=30,
    )


def test_v1_rate_limit_is_counted_before_the_upload(backend: Backend) -> None:
    """Issue 23 #2: the rate limit too was checked after the whole upload had been read."""
    ip = backend.client_ip()
    headers = {**auth("alice"), "X-Forwarded-For": ip}
    for _ in range(2):  # RATE_LIMIT_PROCESS=2/minute; an empty file is refused after counting
        r = _transcribe_empty(backend, headers)
        assert r.status_code == 400, r.text
    status, sent = raw_post(
        backend.port, TRANSCRIBE, headers=headers, size=300 * MB, chunked=False,
        content_type=MULTIPART,
    )  # fmt: skip
    assert status == 429
    assert sent < 50 * MB, f"{sent / MB:.0f} MB went out before the 429"


def test_an_empty_file_is_refused_by_v1_as_by_request_process(backend: Backend) -> None:
    """Issue 23 #5: an empty file through /v1 created a job; request-process refuses it (400)."""
    headers = {**auth("bob"), "X-Forwarded-For": backend.client_ip()}
    r = _transcribe_empty(backend, headers)
    assert r.status_code == 400, r.text
    assert "empty" in r.json()["error"]["message"]
    listed = httpx.get(f"{backend.url}/api/jobs", headers=auth("bob"), timeout=10)
    assert listed.status_code == 200 and listed.json()["jobs"] == [], listed.text

    key = _upload(backend, b"", user="bob")
    r = httpx.post(
        f"{backend.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth("bob"), "X-Forwarded-For": backend.client_ip()},
        timeout=10,
    )
    assert r.status_code == 400 and "empty" in r.json()["detail"], r.text


# ------------------------------------------- the guide's X-Signature-256 alone (legacy allowed)


@pytest.fixture
async def legacy(tmp_path: Path, pg_url: str) -> AsyncIterator[InProcessBackend]:
    """The app in this process with WEBHOOK_ALLOW_LEGACY_SIGNATURE on (a guide-era ML server)."""
    settings = make_settings(tmp_path, pg_url, webhook_allow_legacy_signature=True)
    async for b in open_backend(settings):
        yield b


async def _counted(size: int, read: list[int]) -> AsyncIterator[bytes]:
    """`size` bytes in 1 MB pieces, counting in `read[0]` how many the app has pulled."""
    piece = b"0" * MB
    for _ in range(size // MB):
        read[0] += len(piece)
        yield piece


async def test_a_malformed_legacy_signature_is_refused_before_the_body(
    legacy: InProcessBackend,
) -> None:
    """Issue 23 #1: only X-Signature-256's form can be judged up front; a malformed one is."""
    read = [0]
    r = await legacy.client.post(
        WEBHOOK, content=_counted(60 * MB, read), headers={"X-Signature-256": "sha256=AAAA"}
    )
    assert r.status_code == 401 and r.json()["reason"] == "malformed_signature", r.text
    assert read[0] <= MB, f"{read[0] / MB:.0f} MB read before the refusal"


async def test_a_forged_legacy_signature_is_verified_while_streaming(
    legacy: InProcessBackend,
) -> None:
    """Issue 23 #1: a well-formed X-Signature-256 needs the body; it is hashed as it streams and
    the unverified bytes are not held in memory (60 MB sent, a few MB allocated at the peak)."""
    job_id = await legacy.start_job()
    read = [0]
    tracemalloc.start()
    try:
        r = await legacy.client.post(
            WEBHOOK,
            content=_counted(60 * MB, read),
            headers={"X-Signature-256": "sha256=" + "0" * 64},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 401 and r.json()["reason"] == "bad_signature", r.text
    assert read[0] == 60 * MB
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated at the peak"
    # And a true one is accepted on that path.
    body = json.dumps({"job_id": job_id, "status": "processing", "progress": 30}).encode()
    ok = await legacy.client.post(
        WEBHOOK, content=body, headers={"X-Signature-256": hex_signature(body, BACKEND_SECRET)}
    )
    assert ok.status_code == 200 and ok.json()["status"] == "received", ok.text


# --------------------------------------------------------------- names that break captions

INJECTED_SRT = "\n\n2\n00:00:03,000 --> 00:00:04,000\nINJECTED"
INJECTED_ASS = "\n[Events]\nDialogue: 0,0:00:00.00,0:00:09.00,Default,,0,0,0,,INJECTED"
SEPARATORS = ("\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029")


def _completed_job(backend: Backend, user: str, result: dict[str, Any]) -> str:
    job_id = _start_job(backend, user=user)
    r = _callback(backend, {"job_id": job_id, "status": "completed", "result": result})
    assert r.status_code == 200 and r.json()["status"] == "received", r.text
    return job_id


def _export(backend: Backend, job_id: str, fmt: str, user: str) -> str:
    r = httpx.get(
        f"{backend.url}/api/upload-video/result/{job_id}",
        params={"format": fmt},
        headers=auth(user),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.text


def _word(text: str, start: float, end: float) -> dict[str, Any]:
    return {"word": text, "start": start, "end": end, "volume_db": -20.0, "pitch_hz": 200.0}


def test_speaker_names_cannot_break_caption_files(backend: Backend) -> None:
    """Issue 23 #3: "Smith, John" shifted the ASS Style/Dialogue fields, `-->` and `>` went
    into the VTT voice tag as they were, and U+0085/U+2028 passed the filter into SRT."""
    user = _unique()
    result = {
        "metadata": {"filename": "clip.wav", "duration": 4.0},
        "segments": [
            {"start_time": 0.0, "end_time": 1.0, "speaker": {"speaker_id": "SPEAKER_00"},
             "text": "hello there", "words": [_word("hello", 0.0, 0.4), _word("there", 0.5, 1.0)]},
            {"start_time": 2.0, "end_time": 3.0, "speaker": {"speaker_id": "SPEAKER_01"},
             "text": "yes", "words": [_word("yes", 2.0, 3.0)]},
        ],
    }  # fmt: skip
    job_id = _completed_job(backend, user, result)
    speakers = f"{backend.url}/api/jobs/{job_id}/speakers"
    for sep in SEPARATORS:
        r = httpx.put(speakers, json={"names": {"SPEAKER_00": f"Ann{sep}2"}}, headers=auth(user))
        assert r.status_code == 422, (repr(sep), r.text)
        assert "one line" in r.text, r.text
    names = {"SPEAKER_00": "Smith, John", "SPEAKER_01": "a --> b <i>x</i> & c"}
    r = httpx.put(speakers, json={"names": names}, headers=auth(user), timeout=10)
    assert r.status_code == 200, r.text

    srt = parse_srt(_export(backend, job_id, "srt", user))
    assert [c.lines[0].split("] ")[0] for c in srt] == ["[Smith, John", "[a --> b <i>x</i> & c"]
    vtt = parse_vtt(_export(backend, job_id, "vtt", user))
    voices = [vtt_voice(c.lines[0]) for c in vtt]
    assert voices == ["Smith, John", "a --&gt; b &lt;i&gt;x&lt;/i&gt; &amp; c"], voices
    assert [strip_tags(c.lines[0]) for c in vtt] == ["hello there", "yes"]

    ass = pysubs2.SSAFile.from_string(_export(backend, job_id, "ass", user))
    assert [e.text.split("}")[-1] for e in ass.events] == ["there", "yes"]
    for event in ass.events:
        assert event.style in ass.styles, (event.style, list(ass.styles))
        assert ass.styles[event.style].fontsize == 44
    assert [e.name for e in ass.events] == ["Smith\uff0c John", "a --> b <i>x</i> & c"]


def test_words_and_filename_cannot_inject_cues(backend: Backend) -> None:
    """Issue 23 #3: a newline in a word injected an SRT cue; in the filename an ASS [Events]
    line; U+2028 and U+0085 break lines for many players."""
    user = _unique()
    words = [_word("one" + INJECTED_SRT, 0.0, 0.5), _word("two\u2028three\x85four", 0.5, 1.0)]
    result = {
        "metadata": {"filename": "clip.wav" + INJECTED_ASS, "duration": 4.0},
        "segments": [
            {"start_time": 0.0, "end_time": 1.0, "speaker": {"speaker_id": "SPEAKER_00\n\nX"},
             "text": "one two", "words": words},
        ],
    }  # fmt: skip
    job_id = _completed_job(backend, user, result)
    for fmt in ("srt", "vtt", "ass", "txt", "tsv"):
        text = _export(backend, job_id, fmt, user)
        assert not set(text) & set(SEPARATORS[1:]), (fmt, text)
        assert len(text.splitlines()) == len(text.split("\n")) - text.endswith("\n"), fmt
    srt = parse_srt(_export(backend, job_id, "srt", user))
    vtt = parse_vtt(_export(backend, job_id, "vtt", user))
    # The words' cues and no other: the injected number and timing stay text on a cue's line.
    times = [(c.start, c.end) for c in srt]
    assert times == [(c.start, c.end) for c in vtt] == [(0, 0.5), (0.5, 1)]
    assert [c.index for c in srt] == [1, 2]
    ass_text = _export(backend, job_id, "ass", user)
    lines = ass_text.splitlines()
    assert lines.count("[Events]") == 1
    assert [n for n in lines if n.startswith("Title:")] == [
        "Title: clip.wav [Events] Dialogue: 0,0:00:00.00,0:00:09.00,Default,,0,0,0,,INJECTED"
    ]
    ass = pysubs2.SSAFile.from_string(ass_text)
    assert [e.text.split("}")[-1] for e in ass.events] == [
        "one 2 00:00:03,000 --> 00:00:04,000 INJECTED",
        "two three four",
    ]


# ----------------------------------------------------------------------------- absurd times


@pytest.mark.parametrize(
    "metadata", [{"duration": 2.0}, {}], ids=["duration-known", "duration-unknown"]
)
def test_an_absurd_time_is_refused_at_the_schema(
    backend: Backend, metadata: dict[str, Any]
) -> None:
    """Issue 23 #4: a signed result with a word ending at 1e306 s was stored, and the srt, vtt
    and ass exports then answered 500 (OverflowError)."""
    user = _unique()
    job_id = _start_job(backend, user=user)
    result = {
        "metadata": metadata,
        "segments": [
            {"start_time": 0.0, "end_time": 1.0, "speaker": {"speaker_id": "SPEAKER_00"},
             "text": "hi", "words": [_word("hi", 0.0, 1e306)]},
        ],
    }  # fmt: skip
    r = _callback(backend, {"job_id": job_id, "status": "completed", "result": result})
    assert r.status_code == 422, r.text
    assert "segments[0].words[0].end" in r.text and "outside" in r.text, r.text
    status = httpx.get(
        f"{backend.url}/api/upload-video/status/{job_id}", headers=auth(user), timeout=10
    ).json()
    assert status["status"] != "completed" and status["result"] is None
    for fmt in ("srt", "vtt", "ass"):
        r = httpx.get(
            f"{backend.url}/api/upload-video/result/{job_id}",
            params={"format": fmt},
            headers=auth(user),
            timeout=10,
        )
        assert 400 <= r.status_code < 500, (fmt, r.status_code, r.text)


# ------------------------------------------------------------------ browser and token hygiene


@pytest.mark.parametrize(
    "path", ["/", "/index.html", "/app.js", "/health", "/api/jobs", "/v1/models", "/nope"]
)
def test_page_and_api_carry_the_security_headers(backend: Backend, path: str) -> None:
    """Issue 23 #5: no Content-Security-Policy, X-Frame-Options or X-Content-Type-Options."""
    r = httpx.get(f"{backend.url}{path}", timeout=10)
    csp = r.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ") if d}
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert directives.get("script-src") == ["'self'"], csp  # no inline script on the page
    assert directives.get("object-src") == ["'none'"], csp
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("x-content-type-options") == "nosniff"


def test_the_page_needs_no_inline_script_or_style(backend: Backend) -> None:
    """The page keeps working under `script-src 'self'; style-src 'self'`: nothing inline."""
    html = httpx.get(f"{backend.url}/", timeout=10).text
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son[a-z]+=", html) == []  # no inline event handlers


def test_tokens_must_expire_within_the_max_lifetime(backend: Backend) -> None:
    """Issue 23 #5: a JWT without `exp` was accepted (valid forever once leaked)."""
    url = f"{backend.url}/api/jobs"
    for bad in (
        token("alice", lifetime_s=None),
        token("alice", lifetime_s=400 * 86400),
        token("alice", lifetime_s=600, iat=int(time.time()) - 2 * 86400),
    ):
        r = httpx.get(url, headers={"Authorization": f"Bearer {bad}"}, timeout=10)
        assert r.status_code == 401, r.text
    ok = token("alice", lifetime_s=600, iat=int(time.time()))
    assert httpx.get(url, headers={"Authorization": f"Bearer {ok}"}, timeout=10).status_code == 200


def test_a_permalink_can_play_the_stored_upload_with_sign_in_required(backend: Backend) -> None:
    """Issue 23 #5: with sign-in required the page's `<video src=/api/jobs/{id}/media>` got a
    401 (a media element cannot send the token); a short-lived signed URL plays instead."""
    user = _unique()
    data = b"RIFF" + bytes(range(256)) * 8
    key = _upload(backend, data, user=user)
    r = httpx.post(
        f"{backend.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth(user), "X-Forwarded-For": backend.client_ip()},
        timeout=10,
    )
    job_id = r.json()["job_id"]
    assert httpx.get(f"{backend.url}/api/jobs/{job_id}/media-url", timeout=10).status_code == 401
    other = httpx.get(f"{backend.url}/api/jobs/{job_id}/media-url", headers=auth(_unique()))
    assert other.status_code == 404
    answer = httpx.get(f"{backend.url}/api/jobs/{job_id}/media-url", headers=auth(user))
    assert answer.status_code == 200, answer.text
    media = answer.json()
    assert 0 < media["expires_in"] <= 3600
    # What the <video> does: a plain GET (a range, as browsers ask), no token.
    played = httpx.get(media["url"], headers={"Range": "bytes=0-99"}, timeout=10)
    assert played.status_code in (200, 206), played.text
    assert data.startswith(played.content[:100])
    # The page's script uses it.
    assert "/media-url" in httpx.get(f"{backend.url}/app.js", timeout=10).text


# ------------------------------------------------------------------------------- helpers


def _upload(backend: Backend, data: bytes, *, user: str, name: str = "clip.wav") -> str:
    """generate-url then PUT `data`; the file key."""
    r = httpx.post(
        f"{backend.url}/api/upload-video/generate-url",
        json={"filename": name, "content_type": "audio/wav"},
        headers=auth(user),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    put = httpx.put(
        r.json()["presigned_url"], content=data, headers={"Content-Type": "audio/wav"}, timeout=30
    )
    assert put.status_code == 200, put.text
    key: str = r.json()["file_key"]
    return key


def _start_job(backend: Backend, *, user: str, data: bytes = b"\x00" * 1000) -> str:
    """A dispatched job of `user`'s; its id."""
    key = _upload(backend, data, user=user)
    r = httpx.post(
        f"{backend.url}/api/upload-video/request-process",
        json={"fileKey": key},
        headers={**auth(user), "X-Forwarded-For": backend.client_ip()},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    job_id: str = r.json()["job_id"]
    wait_for(lambda: bool(backend.fake.process_requests(job_id)), timeout_s=20, what="dispatch")
    return job_id


def _callback(backend: Backend, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    return httpx.post(f"{backend.url}{WEBHOOK}", content=body, headers=headers, timeout=10)


def _unique() -> str:
    return f"u{uuid.uuid4().hex[:10]}"
