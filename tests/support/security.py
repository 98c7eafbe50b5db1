"""The security suite's settings, and its outpost: a tiny HTTP server on 127.0.0.5 (the one
private address the ML server may reach in that suite) where `GET /redirect?to=URL` answers 302
and `POST /api/upload-video/result` records callbacks. The Celery tests use the outpost too."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.procs import wait_for

HOST = "127.0.0.5"

# The backend of tests/security/conftest.py's stack: JWT on, a small upload limit.
JWT_SECRET = "security-suite-jwt-secret-0123456789abcdef"
MAX_UPLOAD_BYTES = 400_000


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class Outpost:
    """Redirector and callback receiver in one, on `HOST` and a free port."""

    def __init__(self) -> None:
        self.callbacks: list[dict[str, Any]] = []
        self.hits: list[str] = []
        lock = threading.Lock()
        outpost = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    outpost.hits.append(self.path)
                parts = urlsplit(self.path)
                target = parse_qs(parts.query).get("to", [""])[0]
                if parts.path == "/redirect" and target:
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    outpost.callbacks.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server((HOST, 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def final_for(self, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            for cb in self.callbacks:
                if cb.get("job_id") == job_id and cb.get("status") in ("completed", "failed"):
                    return cb
            return None

        wait_for(lambda: final() is not None, timeout_s=timeout_s, what=f"{job_id}'s callback")
        result = final()
        assert result is not None
        return result

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
