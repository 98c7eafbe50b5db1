"""Celery mode with its broker (or job store) down: a real `ecg ml-server` answers `POST /process`
with a quick 503 + Retry-After and keeps no job record, so the backend's dispatch retry
resubmits the same job; no route answers 500.

The broker is a real closed port (nothing listens) or a real socket that accepts and never
answers (a hung broker); the job store is the real Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from ecg_protocol import sign_headers
from ml_server.executor_celery import PUBLISH_TIMEOUT_S
from tests.support.ml_requests import cancel_job, get_job
from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command
from tests.support.services import REDIS_URL

SECRET = "broker-down-secret"


class SilentBroker:
    """Accepts TCP connections and never answers: a hung broker (or a blackholed one)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True, name="silent-broker")
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self._conns.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._conns:
            conn.close()


class Server:
    """One `ecg ml-server` in Celery mode on the given broker and store."""

    def __init__(self, root: Path, *, broker: str, store: str, prefix: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.prefix = prefix
        env = {
            "ML_BROKER_URL": broker,
            "ML_RESULT_BACKEND_URL": store,
            "ML_REDIS_PREFIX": prefix,
            "ML_CELERY_QUEUE": f"{prefix}queue",
            "WEBHOOK_SECRET_KEY": SECRET,
            "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "ECG_DATA_DIR": str(root / "data"),
        }
        self.proc = ManagedProcess(
            ecg_command("ml-server", "--port", str(port)),
            env=env,
            log_path=root / "ml-server.log",
            name="ml-server",
        )

    def __enter__(self) -> Server:
        self.proc.start()
        self.proc.wait_http_ok(f"{self.base}/health", timeout_s=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()

    def process(self, job_id: str) -> httpx.Response:
        payload: dict[str, Any] = {
            "job_id": job_id,
            "video_url": "http://127.0.0.1:9/video.mp4",
            "fastapi_base_url": "http://127.0.0.1:9",
        }
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
        return httpx.post(f"{self.base}/process", content=body, headers=headers, timeout=30)

    def job(self, job_id: str) -> httpx.Response:
        return get_job(self.base, job_id, SECRET)


def _closed_port_url(scheme: str) -> str:
    port = free_port()  # free a moment ago: nothing listens there
    return (
        f"redis://127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"amqp://guest:guest@127.0.0.1:{port}//"
    )


def _assert_unavailable(r: httpx.Response, job_id: str) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error_code"] == "QUEUE_UNAVAILABLE", body
    assert body["job_id"] == job_id
    assert "retry later" in body["detail"]
    assert int(r.headers["Retry-After"]) > 0
    assert body["retry_after_s"] == int(r.headers["Retry-After"])


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_broker_down_is_503_with_no_job_left(
    tmp_path: Path, prefix: str, redis_client: redis.Redis, scheme: str
) -> None:
    with Server(tmp_path, broker=_closed_port_url(scheme), store=REDIS_URL, prefix=prefix) as srv:
        job_id = str(uuid.uuid4())
        for _ in range(2):  # the backend's retry: the same job id, refused the same way
            started = time.monotonic()
            r = srv.process(job_id)
            elapsed = time.monotonic() - started
            _assert_unavailable(r, job_id)
            # A refused connection fails at once; one quick reconnect is all that is waited.
            assert elapsed < 1.5, f"publish to a dead broker took {elapsed:.2f}s"
            assert srv.job(job_id).status_code == 404
            assert not list(redis_client.scan_iter(match=f"{prefix}job:*"))
        # Nothing else answers 500 either.
        assert srv.job("not-a-job").status_code == 404
        assert cancel_job(srv.base, job_id, SECRET).status_code == 404
        assert httpx.get(f"{srv.base}/health", timeout=10).status_code == 200
        assert httpx.get(f"{srv.base}/metrics", timeout=10).status_code == 200
        assert "Traceback" not in srv.proc.log_text()


def test_a_hung_broker_is_a_bounded_wait_and_the_server_keeps_answering(
    tmp_path: Path, prefix: str, redis_client: redis.Redis, silent_broker: SilentBroker
) -> None:
    broker = f"redis://127.0.0.1:{silent_broker.port}/0"
    with Server(tmp_path, broker=broker, store=REDIS_URL, prefix=prefix) as srv:
        job_id = str(uuid.uuid4())
        result: dict[str, Any] = {}

        def post() -> None:
            started = time.monotonic()
            result["response"] = srv.process(job_id)
            result["elapsed"] = time.monotonic() - started

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        time.sleep(0.3)  # let the publish start waiting on the silent broker
        assert poster.is_alive(), "the publish should still be waiting"
        # The publish waits in a worker thread, not on the event loop: /health answers now.
        started = time.monotonic()
        assert httpx.get(f"{srv.base}/health", timeout=10).status_code == 200
        assert time.monotonic() - started < 1.0
        poster.join(timeout=30)
        assert not poster.is_alive()
        _assert_unavailable(result["response"], job_id)
        # Bounded: connect/command timeouts of PUBLISH_TIMEOUT_S, one reconnect.
        assert result["elapsed"] < 3 * PUBLISH_TIMEOUT_S + 1.0, result["elapsed"]
        assert srv.job(job_id).status_code == 404
        assert not list(redis_client.scan_iter(match=f"{prefix}job:*"))


def test_job_store_down_is_503_not_500(tmp_path: Path, prefix: str) -> None:
    store = f"redis://127.0.0.1:{free_port()}/0"
    broker = f"redis://127.0.0.1:{free_port()}/0"
    with Server(tmp_path, broker=broker, store=store, prefix=prefix) as srv:
        job_id = str(uuid.uuid4())
        for r in (srv.process(job_id), srv.job(job_id), cancel_job(srv.base, job_id, SECRET)):
            assert r.status_code == 503, r.text
            assert r.json()["error_code"] == "STORE_UNAVAILABLE"
            assert int(r.headers["Retry-After"]) > 0
        assert httpx.get(f"{srv.base}/health", timeout=10).status_code == 200
