"""Webhook ingestion of a completed result for a 2-hour video (about 20,000 words, 3 MB JSON):
signed POST /api/upload-video/result → verify + parse + normalize + store, on PostgreSQL.

    .venv/bin/python -m bench.bench_webhook [--jobs 10] [--words 20000] [--hours 2]

Targets (issue 2): p50 < 500 ms; backend RSS growth < 100 MB (peak RSS during the run minus the
RSS before the first large callback, of the one uvicorn worker process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from app.models.job import Job
from bench._backend import (
    SECRET,
    backend_env,
    backend_process,
    cpu_s,
    make_result,
    rss_kb,
    scratch_database,
)
from ecg_protocol import sign_headers
from tests.support.net import free_port


async def seed_running_jobs(database_url: str, n: int) -> list[uuid.UUID]:
    """Jobs already accepted by the ML server (so the dispatcher leaves them alone)."""
    ids = [uuid.uuid4() for _ in range(n)]
    now = datetime.now(UTC)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Job),
            [
                {
                    "job_id": jid,
                    "owner": "anonymous",
                    "status": "processing",
                    "progress": 90,
                    "stage": "emotion",
                    "file_key": f"videos/anonymous/20240101_000000_abcd1234_{jid.hex[:6]}.mp4",
                    "language": "en",
                    "dispatch_attempts": 0,
                    "redispatch_count": 0,
                    "dispatched_at": now,
                    "last_event_at": now,
                }
                for jid in ids
            ],
        )
    await engine.dispose()
    return ids


def callback_body(job_id: uuid.UUID, result: dict[str, Any]) -> bytes:
    payload = {
        "job_id": str(job_id),
        "status": "completed",
        "progress": 100,
        "message": "Processing completed",
        "stage": "done",
        "result": result,
        "error_message": None,
        "error_code": None,
    }
    return json.dumps(payload).encode()


def post(client: httpx.Client, body: bytes) -> float:
    headers = sign_headers(body, SECRET)
    headers["Content-Type"] = "application/json"
    t0 = time.perf_counter()
    r = client.post("/api/upload-video/result", content=body, headers=headers)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200 or r.json().get("status") != "received":
        raise SystemExit(f"callback refused: {r.status_code} {r.text[:300]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10, help="large callbacks to time")
    ap.add_argument("--words", type=int, default=20_000)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args()

    result = make_result(duration_s=args.hours * 3600, words=args.words)
    small = make_result(duration_s=60, words=150, seed=1)
    with tempfile.TemporaryDirectory() as tmp, scratch_database("ecg_bench_webhook") as db_url:
        port = free_port()
        env = backend_env(db_url, Path(tmp) / "data", port)
        with (
            backend_process(
                app="app.main:create_app", factory=True, port=port, env=env, log=Path(tmp) / "log"
            ) as proc,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
        ):
            warm, *ids = asyncio.run(seed_running_jobs(db_url, args.jobs + 1))
            post(client, callback_body(warm, small))  # load every code path once
            client.get(f"/api/upload-video/status/{warm}")
            rss_before, _ = rss_kb(proc.pid)
            bodies = [callback_body(jid, result) for jid in ids]
            size = len(bodies[0])
            cpu_before = cpu_s(proc.pid)
            times = [post(client, body) for body in bodies]
            cpu_per_callback_ms = (cpu_s(proc.pid) - cpu_before) / len(bodies) * 1000
            rss_after, rss_peak = rss_kb(proc.pid)
            stored = client.get(f"/api/upload-video/status/{ids[0]}").json()
            words = sum(len(s["words"]) for s in stored["result"]["segments"])
            assert stored["status"] == "completed" and words == args.words, (
                stored["status"],
                words,
            )
            assert "start" in stored["result"]["segments"][0]  # normalized

    p50 = statistics.median(times) * 1000
    growth_mb = (rss_peak - rss_before) / 1024
    print(
        f"machine: {platform.node()} ({platform.machine()}), "
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"payload {size / 1e6:.2f} MB, {args.words} words, "
        f"{len(result['segments'])} segments, {args.jobs} callbacks"
    )
    print(f"latency ms: p50 {p50:.0f}, min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}")
    print(f"backend CPU per callback: {cpu_per_callback_ms:.0f} ms (user+sys, all threads)")
    print(
        f"backend RSS MB: before {rss_before / 1024:.0f}, after {rss_after / 1024:.0f}, "
        f"peak {rss_peak / 1024:.0f} (growth to peak {growth_mb:.0f})"
    )
    ok = p50 < 500 and growth_mb < 100
    print(f"targets p50 < 500 ms, RSS growth < 100 MB: {'PASS' if ok else 'FAIL'}")
    print(
        json.dumps(
            {
                "payload_bytes": size,
                "p50_ms": p50,
                "max_ms": max(times) * 1000,
                "cpu_ms_per_callback": cpu_per_callback_ms,
                "rss_before_mb": rss_before / 1024,
                "rss_peak_mb": rss_peak / 1024,
                "rss_growth_mb": growth_mb,
                "pass": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
