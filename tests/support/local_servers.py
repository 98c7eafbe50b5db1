"""Small real HTTP servers for the ML server tests: a callback receiver and a media server.

Both run `ThreadingHTTPServer` on a free port in a background thread and stop on `close()`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.net import free_port

FINAL = ("completed", "failed")


@dataclass
class Received:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def status(self) -> str:
        return str(self.json.get("status"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class CallbackReceiver:
    """Records every request; answers 200, or 500 to the first `fail_finals` final callbacks.

    `answer` may be replaced to program any other behaviour: it gets the parsed JSON body and
    returns (status, extra headers).
    """

    def __init__(self, *, fail_finals: int = 0, fail_status: int = 500) -> None:
        self.fail_finals = fail_finals
        self.fail_status = fail_status
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.answer: Callable[[dict[str, Any]], tuple[int, dict[str, str]]] = self._default
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                with receiver._lock:
                    status, headers = receiver.answer(data)
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, status)
                    )
                    receiver._cond.notify_all()
                payload = b'{"status":"ok"}' if status < 300 else b'{"detail":"nope"}'
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _default(self, data: dict[str, Any]) -> tuple[int, dict[str, str]]:
        if data.get("status") in FINAL and self.fail_finals > 0:
            self.fail_finals -= 1
            return self.fail_status, {}
        return 200, {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def for_job(self, job_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.json.get("job_id") == job_id]

    def finals(self, job_id: str, *, accepted_only: bool = True) -> list[Received]:
        return [
            r
            for r in self.for_job(job_id)
            if r.status in FINAL and (r.answered < 300 or not accepted_only)
        ]

    def wait_final(self, job_id: str, timeout_s: float = 180.0) -> Received:
        """The first accepted final callback of `job_id`, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [
                    r
                    for r in self.requests
                    if r.json.get("job_id") == job_id and r.status in FINAL and r.answered < 300
                ]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (r.status, r.json.get("stage"), r.answered)
                        for r in self.requests
                        if r.json.get("job_id") == job_id
                    ]
                    raise AssertionError(f"no final callback for {job_id} in {timeout_s}s: {seen}")
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MediaServer:
    """Serves test media and misbehaving downloads.

    Routes: `/files/<name>` (registered bytes, with Content-Length), `/missing` (404),
    `/huge` (declares a huge Content-Length), `/endless` (no Content-Length, bytes until the
    client gives up), `/stall` (headers and a few bytes, then nothing), `/trickle?s=N` (a byte
    every 0.1 s for N seconds), `/redirect?to=URL` (302), `/loop` (redirects to itself).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        self._release = threading.Event()
        self.port = free_port()
        media = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                media.hits.append(self.path)
                path, _, query = self.path.partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                # The client may give up mid-body, as the test intends.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._route(path, params)

            def _route(self, path: str, params: dict[str, str]) -> None:
                if path.startswith("/files/") and path[7:] in media.files:
                    data = media.files[path[7:]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(50 * 1024**3))
                    self.end_headers()
                    self.wfile.write(b"\0" * 1024)
                elif path == "/endless":
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"\0" * 65536
                    while not media._release.is_set():
                        self.wfile.write(chunk)
                elif path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "50000")
                    self.end_headers()
                    self.wfile.write(b"\0" * 100)
                    self.wfile.flush()
                    media._release.wait(60)
                elif path == "/trickle":
                    seconds = float(params.get("s", "5"))
                    n = int(seconds / 0.1)
                    self.send_response(200)
                    self.send_header("Content-Length", str(n))
                    self.end_headers()
                    for _ in range(n):
                        if media._release.is_set():
                            return
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                        time.sleep(0.1)
                elif path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", params["to"])
                    self.end_headers()
                elif path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def add(self, name: str, data: bytes | Path) -> str:
        """Serve `data` at `/files/<name>`; return its URL."""
        self.files[name] = data.read_bytes() if isinstance(data, Path) else data
        return self.url(f"/files/{name}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
