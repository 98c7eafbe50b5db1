"""Celery scale-out (issue 5): jobs per hour with 1 and with 2 workers on the same queue of 60 s
clips, and dispatch latency (request-process → the ML server has the job).

    .venv/bin/python -m bench.bench_workers [--jobs 8] [--seconds 60] [--latency-samples 40]

Throughput: the ML server runs in Celery mode on the local Redis; `ecg worker` processes (one
pool process each, models loaded once) consume one queue. Per configuration a warm-up job runs
first, then `--jobs` jobs are submitted at once; jobs/hour = jobs / (first submit → last final
callback). Each job's own pipeline time (the result's `processing_time`) shows the contention.

Dispatch latency: a backend on a scratch PostgreSQL database (embedded local storage) dispatches
to the same ML server; for each sample, the client notes the wall clock just before
`POST request-process` and the ML server's job store records when it accepted the job
(`created_at`); both clocks are this machine's. No failures are injected. Target: p50 < 100 ms.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis

from bench._backend import backend_env, backend_process, scratch_database
from bench.bench_e2e import clip
from ecg_protocol import sign_headers
from ml_server.config import MLSettings
from ml_server.store_redis import RedisJobStore
from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.services import REDIS_URL

SECRET = "bench-secret"  # the same secret bench._backend gives the backend


class Outpost:
    """Serves the clip (GET /clip) and records the ML server's callbacks (POST)."""

    def __init__(self, media: Path) -> None:
        self.finals: dict[str, dict[str, Any]] = {}
        self.final_at: dict[str, float] = {}
        data = media.read_bytes()
        outpost = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if body.get("status") in ("completed", "failed"):
                    outpost.final_at.setdefault(body["job_id"], time.monotonic())
                    outpost.finals.setdefault(body["job_id"], body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ml_env(prefix: str, root: Path) -> dict[str, str]:
    return {
        "WEBHOOK_SECRET_KEY": SECRET,
        "ECG_DATA_DIR": str(root / "ml-data"),
        "ML_BROKER_URL": REDIS_URL,
        "ML_REDIS_PREFIX": prefix,
        "ML_CELERY_QUEUE": f"{prefix}queue",
        "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
        "ML_MAX_MEDIA_DURATION_S": "600",
    }


def submit(ml_url: str, outpost: Outpost) -> str:
    job_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "job_id": job_id,
            "video_url": f"{outpost.url}/clip.mp4",
            "fastapi_base_url": outpost.url,
            "language": "en",
        }
    ).encode()
    headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
    r = httpx.post(f"{ml_url}/process", content=body, headers=headers, timeout=30)
    r.raise_for_status()
    return job_id


def wait_finals(outpost: Outpost, job_ids: list[str], timeout_s: float) -> None:
    wait_for(
        lambda: all(j in outpost.finals for j in job_ids),
        timeout_s=timeout_s,
        what=f"{len(job_ids)} jobs",
        interval_s=0.05,
    )
    failed = [outpost.finals[j] for j in job_ids if outpost.finals[j]["status"] != "completed"]
    if failed:
        raise SystemExit(f"jobs failed: {failed[:2]}")


def _more_workers(store: RedisJobStore, before: int) -> bool:
    return store.live_workers() > before


def _has_job(store: RedisJobStore, job_id: str) -> bool:
    return store.get(job_id) is not None


@contextmanager
def workers(n: int, env: dict[str, str], root: Path, store: RedisJobStore) -> Iterator[None]:
    procs = []
    try:
        for i in range(n):
            before = store.live_workers()
            proc = ManagedProcess(
                ecg_command("worker", "--concurrency", "1", "--hostname", f"bench{i}@bench"),
                env=env,
                log_path=root / f"worker-{n}-{i}.log",
                name=f"worker{i}",
            ).start()
            procs.append(proc)
            proc.wait_until(
                functools.partial(_more_workers, store, before),
                timeout_s=180,
                what="models loaded",
            )
        yield
    finally:
        for proc in procs:
            proc.stop(timeout_s=30)
        wait_for(lambda: store.live_workers() == 0, timeout_s=60, what="workers gone")


def throughput(
    n_workers: int,
    jobs: int,
    ml_url: str,
    outpost: Outpost,
    env: dict[str, str],
    root: Path,
    store: RedisJobStore,
) -> dict[str, Any]:
    with workers(n_workers, env, root, store):
        warm = submit(ml_url, outpost)
        wait_finals(outpost, [warm], 600)
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        ids = [submit(ml_url, outpost) for _ in range(jobs)]
        wait_finals(outpost, ids, 600 * jobs)
        wall = max(outpost.final_at[j] for j in ids) - t0
        load1 = os.getloadavg()[0]
    per_job = [
        sum(outpost.finals[j]["result"]["metadata"]["processing_time"].values()) for j in ids
    ]
    return {
        "workers": n_workers,
        "jobs": jobs,
        "wall_s": round(wall, 2),
        "jobs_per_hour": round(jobs / wall * 3600, 1),
        "per_job_pipeline_s_median": round(statistics.median(per_job), 2),
        "per_job_pipeline_s_max": round(max(per_job), 2),
        "load_avg_1m": [round(load0, 2), round(load1, 2)],
    }


def dispatch_latency(
    samples: int, ml_port: int, store: RedisJobStore, root: Path
) -> dict[str, Any]:
    port = free_port()
    with scratch_database("ecg_bench_dispatch") as db:
        env = backend_env(db, root / "backend-data", port)
        env.update(
            {
                "MODEL_SERVER_URL": f"http://127.0.0.1:{ml_port}",
                "RATE_LIMIT_PROCESS": "100000/minute",
            }
        )
        with backend_process(
            app="app.main:create_app", port=port, env=env, log=root / "backend.log", factory=True
        ):
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                grant = client.post(
                    "/api/upload-video/generate-url",
                    json={"filename": "a.wav", "content_type": "audio/wav"},
                ).json()
                put = client.put(
                    grant["presigned_url"],
                    content=b"RIFF" + b"\0" * 4000,
                    headers={"Content-Type": "audio/wav"},
                )
                put.raise_for_status()
                lat: list[float] = []
                for i in range(samples + 3):
                    t0 = time.time()
                    r = client.post(
                        "/api/upload-video/request-process",
                        json={"fileKey": grant["file_key"], "language": "en"},
                    )
                    r.raise_for_status()
                    job_id = r.json()["job_id"]
                    wait_for(
                        functools.partial(_has_job, store, job_id),
                        timeout_s=30,
                        what="the ML server to have the job",
                        interval_s=0.002,
                    )
                    record = store.get(job_id)
                    assert record is not None
                    if i >= 3:  # the first few warm connections and caches
                        lat.append(record.created_at.timestamp() - t0)
    lat.sort()
    return {
        "samples": len(lat),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p90_ms": round(lat[int(len(lat) * 0.9) - 1] * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to run, in order (e.g. 2,1,2,1)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/bench_workers.json"))
    args = parser.parse_args()

    prefix = f"ecg-bench-{uuid.uuid4().hex[:8]}:"
    report: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "clip_s": args.seconds,
    }
    media = clip(args.seconds)
    outpost = Outpost(media)
    store = RedisJobStore.from_settings(
        MLSettings(ml_broker_url=REDIS_URL, ml_redis_prefix=prefix, webhook_secret_key=SECRET)
    )
    with tempfile.TemporaryDirectory(prefix="ecg-bench-workers-") as tmp:
        root = Path(tmp)
        env = ml_env(prefix, root)
        ml_port = free_port()
        with ManagedProcess(
            ecg_command("ml-server", "--port", str(ml_port)),
            env=env,
            log_path=root / "ml.log",
            name="ml-server",
        ) as ml:
            ml.wait_http_ok(f"http://127.0.0.1:{ml_port}/health", timeout_s=60)
            ml_url = f"http://127.0.0.1:{ml_port}"
            report["dispatch_latency"] = dispatch_latency(
                args.latency_samples, ml_port, store, root
            )
            redis.Redis.from_url(REDIS_URL).delete(f"{prefix}queue")  # undispatched samples
            report["throughput"] = [
                throughput(n, args.jobs, ml_url, outpost, env, root, store)
                for n in [int(x) for x in args.workers.split(",")]
            ]
    keys = list(store.client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        store.client.delete(*keys)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
