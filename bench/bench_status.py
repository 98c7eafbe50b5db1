"""GET /api/upload-video/status/{id} under 50 concurrent clients, against a bare FastAPI endpoint
on the same server in the same run (backend on PostgreSQL, one uvicorn worker).

    .venv/bin/python -m bench.bench_status [--connections 50] [--duration 8] [--rounds 2]

Targets (issue 2): status throughput ≥ 40% of the bare endpoint's, status p99 ≤ 2× bare p99.
A second backend with the status cache switched off shows the database path alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from app.models.job import Job
from bench._backend import backend_env, backend_process, make_result, scratch_database
from bench._load import LoadResult, run_load
from bench.status_app import BARE_PATH
from ecg_protocol import normalize_timestamp_fields
from tests.support.net import free_port


async def seed_completed_job(database_url: str, words: int, duration_s: float) -> uuid.UUID:
    job_id = uuid.uuid4()
    result = normalize_timestamp_fields(make_result(duration_s=duration_s, words=words))
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Job).values(
                job_id=job_id,
                owner="anonymous",
                status="completed",
                progress=100,
                stage="done",
                file_key="videos/anonymous/20240101_000000_abcd1234_video.mp4",
                language="en",
                result=result,
                dispatch_attempts=0,
                redispatch_count=0,
            )
        )
    await engine.dispose()
    return job_id


async def measure(
    port: int,
    paths: list[str],
    *,
    connections: int,
    warmup_s: float,
    duration_s: float,
    rounds: int,
) -> dict[str, list[LoadResult]]:
    out: dict[str, list[LoadResult]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path in paths:  # interleaved, so drift hits both alike
            out[path].append(
                await run_load(
                    "127.0.0.1",
                    port,
                    path,
                    connections=connections,
                    warmup_s=warmup_s,
                    duration_s=duration_s,
                )
            )
    return out


def summarize(results: list[LoadResult]) -> dict[str, float]:
    return {
        "rps": sum(r.rps for r in results) / len(results),
        "p50_ms": sum(r.p50_ms for r in results) / len(results),
        "p99_ms": sum(r.p99_ms for r in results) / len(results),
        "errors": float(sum(r.errors for r in results)),
        "body_bytes": float(results[0].body_bytes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per round")
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--words", type=int, default=420, help="words in the stored result")
    ap.add_argument("--media-duration", type=float, default=143.39)
    ap.add_argument("--skip-nocache", action="store_true")
    args = ap.parse_args()

    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, scratch_database("ecg_bench_status") as db_url:
        port = free_port()
        env = backend_env(db_url, Path(tmp) / "data", port)
        log = Path(tmp) / "backend.log"
        with backend_process(
            app="bench.status_app:create", factory=True, port=port, env=env, log=log
        ):
            job_id = asyncio.run(seed_completed_job(db_url, args.words, args.media_duration))
            status_path = f"/api/upload-video/status/{job_id}"
            res = asyncio.run(
                measure(
                    port,
                    [BARE_PATH, status_path],
                    connections=args.connections,
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                    rounds=args.rounds,
                )
            )
            rows["bare"] = summarize(res[BARE_PATH])
            rows["status"] = summarize(res[status_path])
        if not args.skip_nocache:
            port = free_port()
            env = {
                **backend_env(db_url, Path(tmp) / "data", port),
                "STATUS_CACHE_TTL_S": "0",
                "STATUS_CACHE_FINAL_TTL_S": "0",
            }
            with backend_process(
                app="bench.status_app:create", factory=True, port=port, env=env, log=log
            ):
                res = asyncio.run(
                    measure(
                        port,
                        [BARE_PATH, status_path],
                        connections=args.connections,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        rounds=1,
                    )
                )
                rows["bare (2nd server)"] = summarize(res[BARE_PATH])
                rows["status, cache off"] = summarize(res[status_path])

    bare, status = rows["bare"], rows["status"]
    ratio = status["rps"] / bare["rps"]
    p99x = status["p99_ms"] / bare["p99_ms"]
    print(
        f"machine: {platform.node()} ({platform.machine()}), "
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"{args.connections} connections, {args.rounds}×{args.duration:g}s per endpoint, "
        f"result {int(status['body_bytes'])} bytes"
    )
    print(f"{'endpoint':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, r in rows.items():
        print(
            f"{name:<22}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{int(r['errors']):>8}"
        )
    ok = ratio >= 0.40 and p99x <= 2.0
    print(
        f"status/bare throughput {ratio:.0%} (target ≥ 40%), p99 {p99x:.2f}× bare "
        f"(target ≤ 2×): {'PASS' if ok else 'FAIL'}"
    )
    print(json.dumps({"rows": rows, "throughput_ratio": ratio, "p99_ratio": p99x, "pass": ok}))


if __name__ == "__main__":
    main()
