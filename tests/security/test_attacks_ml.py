"""Issue 9's attacks on the ML server, kept as regressions (real processes, Celery mode).

Each test is one thing an attacker or an unlucky upload did: a huge body, an unsigned read or
cancel, a replay with the timestamp headers dropped, malformed JSON, and a 7.1 video that used to
segfault the server; plus an analysis child killed twice in a Celery worker (a poison file).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecg_protocol import sign_headers
from ecg_protocol.signing import ID_HEADER, TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER
from tests.support import media
from tests.support.ml_requests import cancel_job, get_job, job_headers
from tests.support.procs import wait_for
from tests.support.security import HOST, Outpost
from tests.support.stack import SECRET, Stack

STREAMED_BYTES = 200 * 1024 * 1024
RSS_GROWTH_LIMIT = 40 * 1024 * 1024  # the 64 KB limit plus buffers; 200 MB read would show


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _payload(job_id: str, video_url: str, callback: str) -> dict[str, Any]:
    return {"job_id": job_id, "video_url": video_url, "fastapi_base_url": callback}


def _signed_post(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    return httpx.post(f"{stack.ml_url}/process", content=body, headers=headers, timeout=30)


def _stream(port: int, headers: dict[str, str], total: int) -> tuple[int, bytes]:
    """POST a chunked body of `total` zero bytes; (bytes the server took, its answer)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        "POST /process HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n{head}\r\n"
    ).encode()
    chunk = b"%x\r\n" % (1 << 20) + b"0" * (1 << 20) + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += 1 << 20
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: it stopped reading
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    return sent, answer


def test_a_200_mb_streamed_body_is_refused_without_being_read(sec_stack: Stack) -> None:
    assert sec_stack.ml is not None
    pid = sec_stack.ml.pid
    before = _rss(pid)
    port = int(sec_stack.ml_url.rsplit(":", 1)[1])
    # Signature headers present (or it would be refused before any byte): the size decides.
    headers = sign_headers(b"{}", SECRET)
    _, answer = _stream(port, headers, STREAMED_BYTES)
    # Answered 413 at 64 KB; uvicorn discards the rest as it arrives, so memory stays flat.
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert _rss(pid) - before < RSS_GROWTH_LIMIT
    assert httpx.get(f"{sec_stack.ml_url}/health", timeout=10).status_code == 200


def test_an_oversized_content_length_is_refused_before_the_body(sec_stack: Stack) -> None:
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(1536 * 1024 * 1024),
        **sign_headers(b"{}", SECRET),
    }
    port = int(sec_stack.ml_url.rsplit(":", 1)[1])
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /process HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        answer = sock.recv(65536)  # answered with no body byte sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_an_unsigned_request_is_refused_before_its_body(sec_stack: Stack) -> None:
    port = int(sec_stack.ml_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 60000\r\n\r\n"
        )
        answer = sock.recv(65536)  # 401 while the announced body is still unsent
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_reads_and_cancels_must_be_signed(sec_stack: Stack, outpost: Outpost) -> None:
    job_id = str(uuid.uuid4())
    # A job the API accepts (it waits in the queue: no worker is needed for this test).
    payload = _payload(job_id, f"{outpost.base_url}/none.mp4", outpost.base_url)
    assert _signed_post(sec_stack, payload).status_code == 202
    base = sec_stack.ml_url
    assert httpx.get(f"{base}/jobs/{job_id}", timeout=10).status_code == 401
    assert httpx.delete(f"{base}/jobs/{job_id}", timeout=10).status_code == 401
    # A signed read of another job cannot be replayed on this one (method and path are signed).
    other = job_headers("GET", str(uuid.uuid4()), SECRET)
    assert httpx.get(f"{base}/jobs/{job_id}", headers=other, timeout=10).status_code == 401
    as_delete = job_headers("GET", job_id, SECRET)
    assert httpx.delete(f"{base}/jobs/{job_id}", headers=as_delete, timeout=10).status_code == 401
    assert get_job(base, job_id, SECRET).status_code == 200
    assert cancel_job(base, job_id, SECRET).status_code in (202, 409)


def test_dropping_the_timestamp_headers_does_not_bypass_the_replay_window(
    sec_stack: Stack, outpost: Outpost
) -> None:
    job_id = str(uuid.uuid4())
    body = json.dumps(_payload(job_id, f"{outpost.base_url}/v.mp4", outpost.base_url)).encode()
    captured = sign_headers(body, SECRET, timestamp=int(time.time()) - 3600)
    url = f"{sec_stack.ml_url}/process"
    stale = httpx.post(url, content=body, headers=captured, timeout=10)
    assert stale.status_code == 401 and stale.json()["reason"] == "stale_timestamp"
    legacy_only = {
        k: v
        for k, v in captured.items()
        if k not in (ID_HEADER, TIMESTAMP_HEADER, WEBHOOK_SIGNATURE_HEADER)
    }
    downgraded = httpx.post(url, content=body, headers=legacy_only, timeout=10)
    assert downgraded.status_code == 401, downgraded.text
    assert get_job(sec_stack.ml_url, job_id, SECRET).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 2000,
        b"{" * 2000 + b"}" * 2000,
        b'{"a":' * 5000,
        b"[]",
        b'"a string"',
        b"123",
        b"null",
        b"",
        b"\xff\xfe",
        b'{"job_id": NaN}',
        b"9" * 5000,
        b'{"job_id": "x", "job_id": {"$gt": ""}}',
    ],
    ids=lambda b: repr(b[:12]),
)
def test_malformed_json_of_any_shape_is_a_4xx(sec_stack: Stack, body: bytes) -> None:
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    r = httpx.post(f"{sec_stack.ml_url}/process", content=body, headers=headers, timeout=10)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
    assert r.json()["error_code"] in ("INVALID_REQUEST", "REQUEST_TOO_LARGE")


# --------------------------------------------------------------------------- real jobs


class _Files:
    """Serves files from a folder on the one private host the ML server may reach."""

    def __init__(self, root: Path) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://{HOST}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def outpost() -> Iterator[Outpost]:
    server = Outpost()
    yield server
    server.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Files]:
    root = tmp_path_factory.mktemp("attack-media")
    ffmpeg = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run(
        [*ffmpeg, "-f", "lavfi", "-i", "color=s=64x64:d=3", "-f", "lavfi", "-i", "sine=r=48000",
         "-filter_complex", "[1:a]aformat=channel_layouts=7.1[a]", "-map", "0:v", "-map", "[a]",
         "-t", "3", "-c:v", "libx264", "-c:a", "aac", str(root / "movie71.mp4")],
        check=True,
    )  # fmt: skip
    # Under the stack's 120 s ML_MAX_MEDIA_DURATION_S, long enough to be killed mid-analysis.
    subprocess.run(
        [*ffmpeg, "-stream_loop", "0", "-i", str(media.dialogue("wav", long=True).path),
         "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(root / "long.mp3")],
        check=True,
    )  # fmt: skip
    server = _Files(root)
    yield server
    server.close()


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _analysis_child(worker_pid: int, *, other_than: int | None = None) -> int:
    found: list[int] = []

    def one() -> bool:
        nonlocal found
        found = []
        for pid in _descendants(worker_pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ml_server.executor_child" in cmdline and pid != other_than:
                found.append(pid)
        return len(found) == 1

    wait_for(one, timeout_s=120, what="the worker's analysis child")
    return found[0]


def test_the_71_video_completes_in_a_celery_worker(
    worker: Stack, outpost: Outpost, files: _Files
) -> None:
    job_id = str(uuid.uuid4())
    payload = _payload(job_id, f"{files.base_url}/movie71.mp4", outpost.base_url)
    assert _signed_post(worker, payload).status_code == 202
    final = outpost.final_for(job_id, timeout_s=240)
    assert final["status"] == "completed", final
    assert all(proc.alive() for proc in worker.workers)


def test_a_poison_job_in_a_celery_worker_fails_media_crashed_once(
    worker: Stack, outpost: Outpost, files: _Files
) -> None:
    [proc] = worker.workers
    job_id = str(uuid.uuid4())
    payload = _payload(job_id, f"{files.base_url}/long.mp3", outpost.base_url)
    assert _signed_post(worker, payload).status_code == 202
    worker.wait_ml(
        job_id, lambda r: r["stage"] not in ("queued", "download"), "the analysis to start"
    )
    first = _analysis_child(proc.pid)
    os.kill(first, signal.SIGSEGV)
    second = _analysis_child(proc.pid, other_than=first)
    os.kill(second, signal.SIGSEGV)
    final = outpost.final_for(job_id, timeout_s=120)
    assert final["status"] == "failed" and final["error_code"] == "MEDIA_CRASHED", final
    assert proc.alive()
    # Not re-delivered into a crash loop: exactly one final callback, ever.
    finals = [
        cb
        for cb in outpost.callbacks
        if cb.get("job_id") == job_id and cb.get("status") in ("completed", "failed")
    ]
    assert len(finals) == 1
    record = worker.store().get(job_id)
    assert record is not None and record.error_code == "MEDIA_CRASHED"
