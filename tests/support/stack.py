"""The whole system as real processes, for the fault tests: backend(s), ML server in Celery mode,
Celery workers, on real PostgreSQL, Redis and SeaweedFS S3.

Everything is tuned through the environment for speed (short clips, short retry delays, a
visibility timeout of seconds), never patched: the code under test is the code that ships.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import redis

from ml_server.config import MLSettings
from ml_server.store_redis import RedisJobStore
from tests.support.media import dialogue
from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.seaweed import SeaweedS3
from tests.support.services import REDIS_URL

SECRET = "fault-suite-secret"
FINAL = ("completed", "failed")
BUCKET = "ecg-test"

# Bounds that make every recovery path finish in seconds on a loaded 2-core machine.
VISIBILITY_S = 15
LEASE_S = 4


@cache
def short_clip() -> Path:
    """The first ~5 s of the synthetic dialogue (one speaker), as WAV: a job of a few seconds."""
    source = dialogue("wav").path
    out = source.with_name("fault-clip-5s.wav")
    if not out.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(source),
                "-t",
                "5.5",
                str(out),
            ],
            check=True,
        )
    return out


@dataclass
class Stack:
    """Ports, environments and processes of one system under test."""

    root: Path
    pg_url: str
    s3: SeaweedS3
    backend_port: int = field(default_factory=free_port)
    ml_port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"ecg-fault-{uuid.uuid4().hex[:10]}:")
    backend_extra: dict[str, str] = field(default_factory=dict)
    ml_extra: dict[str, str] = field(default_factory=dict)
    backends: list[ManagedProcess] = field(default_factory=list)
    ml: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)
    _counter: int = 0
    _store: RedisJobStore | None = None

    # ------------------------------------------------------------------ environments

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    @property
    def ml_url(self) -> str:
        return f"http://127.0.0.1:{self.ml_port}"

    def backend_env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.pg_url,
            "S3_BUCKET_NAME": BUCKET,
            "S3_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_REGION": self.s3.region,
            "MODEL_SERVER_URL": self.ml_url,
            "FASTAPI_BASE_URL": self.backend_url,
            "WEBHOOK_SECRET_KEY": SECRET,
            "ECG_DATA_DIR": str(self.root / "backend-data"),
            "RATE_LIMIT_PROCESS": "10000/minute",
            "DISPATCH_RETRY_DELAYS": "1,1,2,2,2,2,2,2",
            "DISPATCH_POLL_INTERVAL_S": "0.2",
            "DISPATCH_LEASE_S": "10",
            "RECONCILE_INTERVAL_S": "2",
            "ML_API_TIMEOUT": "30",
            **self.backend_extra,
        }

    def ml_env(self) -> dict[str, str]:
        return {
            "WEBHOOK_SECRET_KEY": SECRET,
            "ECG_DATA_DIR": str(self.root / "ml-data"),
            "ML_BROKER_URL": REDIS_URL,
            "ML_REDIS_PREFIX": self.prefix,
            "ML_CELERY_QUEUE": f"{self.prefix}queue",
            "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            "ML_MAX_MEDIA_DURATION_S": "120",
            "ML_DOWNLOAD_TIMEOUT_S": "30",
            "ML_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
            "ML_JOB_LEASE_S": str(LEASE_S),
            "ML_MAX_ATTEMPTS": "3",
            "ML_CALLBACK_MAX_ATTEMPTS": "60",
            "ML_CALLBACK_BACKOFF_BASE_S": "0.2",
            "ML_CALLBACK_BACKOFF_MAX_S": "1",
            "ML_CALLBACK_TIMEOUT_S": "5",
            "ML_CPU_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **self.ml_extra,
        }

    def ml_settings(self) -> MLSettings:
        return MLSettings(
            ml_broker_url=REDIS_URL, ml_redis_prefix=self.prefix, webhook_secret_key=SECRET
        )

    # ------------------------------------------------------------------ processes

    def start_backend(self, *, port: int | None = None) -> ManagedProcess:
        """One more backend replica (on `port`, default the stack's port); waits for /health."""
        port = port or self.backend_port
        self._counter += 1
        proc = ManagedProcess(
            ecg_command("backend", "--port", str(port)),
            env=self.backend_env(),
            log_path=self.root / f"backend-{port}.log",
            name=f"backend:{port}",
        ).start()
        self.backends.append(proc)
        proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
        return proc

    def start_ml(self) -> ManagedProcess:
        proc = ManagedProcess(
            ecg_command("ml-server", "--port", str(self.ml_port)),
            env=self.ml_env(),
            log_path=self.root / "ml-server.log",
            name="ml-server",
        ).start()
        self.ml = proc
        proc.wait_http_ok(f"{self.ml_url}/health", timeout_s=60)
        return proc

    def start_worker(self, name: str) -> ManagedProcess:
        """`ecg worker` (one pool process); returns once its models are loaded."""
        before = self.store().live_workers()
        proc = ManagedProcess(
            ecg_command("worker", "--concurrency", "1", "--hostname", f"{name}@faults"),
            env=self.ml_env(),
            log_path=self.root / f"worker-{name}.log",
            name=f"worker:{name}",
        ).start()
        self.workers.append(proc)
        proc.wait_until(
            lambda: self.store().live_workers() > before,
            timeout_s=120,
            what="the worker's models to load",
            interval_s=0.2,
        )
        return proc

    def stop_all(self) -> None:
        for proc in [*self.workers, *([self.ml] if self.ml else []), *self.backends]:
            if proc.alive():
                proc.stop(timeout_s=10)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    # ------------------------------------------------------------------ client side

    def store(self) -> RedisJobStore:
        if self._store is None:
            self._store = RedisJobStore.from_settings(self.ml_settings())
        return self._store

    def upload(self, path: Path | None = None) -> str:
        """Upload a clip the guide's way; returns its file key."""
        path = path or short_clip()
        with httpx.Client(base_url=self.backend_url, timeout=30) as client:
            r = client.post(
                "/api/upload-video/generate-url",
                json={"filename": path.name, "content_type": "audio/wav"},
            )
            r.raise_for_status()
            grant = r.json()
            put = client.put(
                grant["presigned_url"],
                content=path.read_bytes(),
                headers={"Content-Type": "audio/wav"},
            )
            put.raise_for_status()
            return str(grant["file_key"])

    def request_process(self, file_key: str, *, base_url: str | None = None) -> str:
        r = httpx.post(
            f"{base_url or self.backend_url}/api/upload-video/request-process",
            json={"fileKey": file_key, "language": "en"},
            timeout=30,
        )
        r.raise_for_status()
        return str(r.json()["job_id"])

    def submit(self) -> str:
        return self.request_process(self.upload())

    def status(self, job_id: str, *, base_url: str | None = None) -> dict[str, Any]:
        r = httpx.get(
            f"{base_url or self.backend_url}/api/upload-video/status/{job_id}", timeout=10
        )
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def wait_final(self, job_id: str, *, timeout_s: float = 180) -> dict[str, Any]:
        """Poll the backend until the job is final; returns its status document."""
        seen: dict[str, Any] = {}

        def final() -> bool:
            nonlocal seen
            try:
                seen = self.status(job_id)
            except httpx.HTTPError:
                return False  # the backend may be restarting
            return seen.get("status") in FINAL

        try:
            wait_for(final, timeout_s=timeout_s, what=f"job {job_id} to finish", interval_s=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status {seen}\n{self.logs_tail()}") from exc
        return seen

    def wait_ml(
        self,
        job_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout_s: float = 120,
    ) -> None:
        """Wait on the ML side's shared record of the job (Redis)."""

        def check() -> bool:
            record = self.store().get(job_id)
            return record is not None and predicate(record.model_dump(mode="json"))

        try:
            wait_for(check, timeout_s=timeout_s, what=what, interval_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs_tail()}") from exc

    def completions(self, job_id: str) -> int:
        """Pipeline runs of `job_id` that completed, over every worker's log."""
        pattern = re.compile(rf"job completed job_id={re.escape(job_id)}\b")
        return sum(len(pattern.findall(w.log_text())) for w in self.workers)

    def logs_tail(self) -> str:
        procs = [*self.workers, *([self.ml] if self.ml else []), *self.backends]
        return "\n".join(p.log_tail(25) for p in procs)


def wait_seconds(seconds: float) -> None:
    """A bounded pause for a deliberately timed fault (never used to wait for a condition)."""
    time.sleep(seconds)
