"""Load on the backend (issue 5): 200 concurrent status pollers plus a steady stream of signed
webhooks for 60 s, against one backend process on PostgreSQL. Target: 0 errors.

    .venv/bin/python -m bench.load_backend [--pollers 200] [--webhooks-per-s 50]
        [--duration 60] [--jobs 200] [--replicas 1] [--out bench/out/load_backend.json]

Each poller loops GET /api/upload-video/status/{id} over the seeded jobs; the webhook stream
posts signed `processing` callbacks (progress rising per job) at a fixed rate, and completes
one job in twenty with a small result, so the mix covers open and final jobs, cache hits and
misses, inserts into webhook_events and guarded state updates. An error is any non-2xx answer,
timeout or connection failure. Loopback only, bounded by the duration; the client is httpx on
asyncio as the issue asks (on a 2-core machine the client competes with the server for CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._backend import SECRET, backend_env, backend_process, cpu_s, scratch_database
from bench.bench_webhook import seed_running_jobs
from ecg_protocol import sign_headers
from tests.support.net import free_port

# Below uvicorn's 5 s keep-alive timeout: with httpx's default (also 5 s) a request can go out on
# a connection the server is closing at that instant, and fail with ReadError (seen once in a
# 60 s run). Real callers retry such errors (the ML server's callback sender does).
KEEPALIVE_S = 2.0


@dataclass
class Series:
    """Latencies (s) and errors of one kind of request."""

    name: str
    lat: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.lat)
        q = statistics.quantiles(lat, n=100) if len(lat) >= 100 else [lat[-1] if lat else 0] * 99
        return {
            "requests": len(lat),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "throughput_rps": round(len(lat) / seconds, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
            "p99_ms": round(q[98] * 1000, 2),
        }


def _small_result(job_id: str) -> dict[str, Any]:
    return {
        "metadata": {
            "filename": "clip.mp4",
            "duration": 4.0,
            "total_segments": 1,
            "unique_speakers": 1,
        },
        "segments": [
            {
                "start_time": 0.1,
                "end_time": 3.9,
                "speaker": {"speaker_id": "SPEAKER_00"},
                "text": f"job {job_id[:8]}",
                "words": [
                    {"word": "job", "start": 0.1, "end": 0.4, "volume_db": -20.0, "pitch_hz": 110.0}
                ],
            }
        ],
    }


async def poller(
    client: httpx.AsyncClient, ids: list[str], stop_at: float, s: Series, rng: random.Random
) -> None:
    while time.monotonic() < stop_at:
        job_id = rng.choice(ids)
        t0 = time.perf_counter()
        try:
            r = await client.get(f"/api/upload-video/status/{job_id}")
        except httpx.HTTPError as exc:
            s.error(type(exc).__name__)
            continue
        if r.status_code != 200:
            s.error(f"HTTP {r.status_code}")
            continue
        s.lat.append(time.perf_counter() - t0)


async def webhooks(
    client: httpx.AsyncClient, ids: list[str], rate: float, stop_at: float, s: Series
) -> None:
    """Fire callbacks at `rate` per second (each in its own task, so a slow answer never
    lowers the offered rate); every 20th completes its job."""
    progress = dict.fromkeys(ids, 10)
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    start = time.monotonic()

    async def one(payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
        t0 = time.perf_counter()
        try:
            r = await client.post("/api/upload-video/result", content=body, headers=headers)
        except httpx.HTTPError as exc:
            s.error(type(exc).__name__)
            return
        if r.status_code != 200:
            s.error(f"HTTP {r.status_code}")
            return
        s.lat.append(time.perf_counter() - t0)

    while True:
        due = start + sent / rate
        now = time.monotonic()
        if due >= stop_at:
            break
        if due > now:
            await asyncio.sleep(due - now)
        job_id = ids[sent % len(ids)]
        sent += 1
        if sent % 20 == 0:
            payload: dict[str, Any] = {
                "job_id": job_id,
                "status": "completed",
                "progress": 100,
                "result": _small_result(job_id),
            }
        else:
            progress[job_id] = min(99, progress[job_id] + 1)
            payload = {
                "job_id": job_id,
                "status": "processing",
                "progress": progress[job_id],
                "stage": "transcribe",
            }
        task = asyncio.create_task(one(payload))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)


async def drive(base_urls: list[str], ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    polls, hooks = Series("status"), Series("webhook")
    # One small client per poller: a single httpx pool shared by hundreds of connections
    # spends its time searching the pool (measured: ~20 requests/s in total), which would
    # make the client, not the backend, the thing measured.
    poll_clients = [
        httpx.AsyncClient(
            base_url=base_urls[i % len(base_urls)],
            timeout=30,
            limits=httpx.Limits(max_connections=1, keepalive_expiry=KEEPALIVE_S),
        )
        for i in range(args.pollers)
    ]
    hook_client = httpx.AsyncClient(
        base_url=base_urls[0],
        timeout=30,
        limits=httpx.Limits(max_connections=50, keepalive_expiry=KEEPALIVE_S),
    )
    try:
        # Warm-up: every connection open and the caches primed before the measured window.
        await asyncio.gather(
            *(c.get(f"/api/upload-video/status/{ids[0]}") for c in poll_clients),
            hook_client.get(f"/api/upload-video/status/{ids[0]}"),
        )
        started = time.monotonic()
        stop_at = started + args.duration
        rng = random.Random(5)
        tasks = [
            poller(client, ids, stop_at, polls, random.Random(rng.random()))
            for client in poll_clients
        ]
        tasks.append(webhooks(hook_client, ids, args.webhooks_per_s, stop_at, hooks))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in [*poll_clients, hook_client]))
    return {
        "status": polls.summary(elapsed),
        "webhook": hooks.summary(elapsed),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--webhooks-per-s", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=1, help="backend processes on one DB")
    parser.add_argument("--out", type=Path, default=Path("bench/out/load_backend.json"))
    args = parser.parse_args()
    if not (0 < args.duration <= 600 and 0 < args.pollers <= 1000):
        raise SystemExit("keep --duration ≤ 600 s and --pollers ≤ 1000")

    with tempfile.TemporaryDirectory(prefix="ecg-load-") as tmp, scratch_database("ecg_load") as db:
        ports = [free_port() for _ in range(args.replicas)]
        with ExitStack() as stack:
            procs = []
            for port in ports:
                env = backend_env(db, Path(tmp) / f"data-{port}", port)
                env["RATE_LIMIT_PROCESS"] = "100000/minute"
                procs.append(
                    stack.enter_context(
                        backend_process(
                            app="app.main:create_app",
                            port=port,
                            env=env,
                            log=Path(tmp) / f"backend-{port}.log",
                            factory=True,
                        )
                    )
                )
            # Seeded after start-up: the backend's migrations create the tables.
            ids = [str(j) for j in asyncio.run(seed_running_jobs(db, args.jobs))]
            cpu0 = [cpu_s(p.pid) for p in procs]
            client0 = resource.getrusage(resource.RUSAGE_SELF)
            report = asyncio.run(drive([f"http://127.0.0.1:{p}" for p in ports], ids, args))
            client1 = resource.getrusage(resource.RUSAGE_SELF)
            report["client_cpu_s"] = round(
                client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime, 1
            )
            report["backend_cpu_s"] = [
                round(cpu_s(p.pid) - c, 1) for p, c in zip(procs, cpu0, strict=True)
            ]
            errors = [
                line
                for p in ports
                for line in (Path(tmp) / f"backend-{p}.log").read_text().splitlines()
                if " ERROR " in line or "Traceback" in line
            ]
            report["backend_error_log_lines"] = len(errors)
    report.update(
        {
            "machine": f"{platform.node()} {platform.machine()} ({platform.processor() or 'cpu'})",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "pollers": args.pollers,
            "webhooks_per_s": args.webhooks_per_s,
            "jobs": args.jobs,
            "replicas": args.replicas,
            "run_id": uuid.uuid4().hex[:8],
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    total_errors = report["status"]["errors"] + report["webhook"]["errors"]
    if total_errors:
        raise SystemExit(f"{total_errors} errors")


if __name__ == "__main__":
    main()
