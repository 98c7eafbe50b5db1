"""Helpers shared by the backend benchmarks: a scratch PostgreSQL database, a backend uvicorn
subprocess, a realistic analysis result, and the RSS of a process."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
ADMIN_URLS = (
    "postgresql://root@127.0.0.1:5432/postgres",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)
SECRET = "bench-secret"


def _admin_url() -> str:
    env = os.environ.get("ECG_BENCH_PG_ADMIN_URL")
    for url in (env,) if env else ADMIN_URLS:
        with contextlib.suppress(psycopg.Error), psycopg.connect(url, connect_timeout=5):
            return url
    raise SystemExit("no PostgreSQL reachable on 127.0.0.1:5432")


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database for one run (async SQLAlchemy URL), dropped afterwards."""
    admin = _admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def backend_process(
    *, app: str, port: int, env: dict[str, str], log: Path, factory: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """uvicorn with one worker serving `app` on 127.0.0.1:`port`, until the block ends."""
    cmd: Sequence[str] = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        cmd = [*cmd, "--factory"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"backend did not start; see {log}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def backend_env(database_url: str, data_dir: Path, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "ECG_DATA_DIR": str(data_dir),
        "WEBHOOK_SECRET_KEY": SECRET,
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        # No ML server in these benchmarks: the dispatcher stays idle (no pending rows).
        "MODEL_SERVER_URL": "http://127.0.0.1:9",
        "RECONCILE_INTERVAL_S": "3600",
    }


def rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of `pid` in KiB, from /proc."""
    cur = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cur, peak


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by `pid` (load-independent cost measure)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_result(
    *, duration_s: float, words: int, speakers: int = 4, seed: int = 7
) -> dict[str, Any]:
    """An analysis result in the ML server's wire shape (start_time/end_time), every key set."""
    rng = random.Random(seed)
    vocab = [
        "you",
        "know",
        "we",
        "should",
        "all",
        "do",
        "go",
        "see",
        "a",
        "musical",
        "really",
        "think",
        "about",
        "that",
        "tomorrow",
        "because",
        "the",
        "weather",
        "looks",
        "great",
    ]
    per_word = duration_s / words
    segments: list[dict[str, Any]] = []
    t = 0.0
    left = words
    while left > 0:
        n = min(left, rng.randint(8, 18))
        speaker = f"SPEAKER_{rng.randrange(speakers):02d}"
        seg_words: list[dict[str, Any]] = []
        start = t
        for _ in range(n):
            w_end = t + per_word * 0.8
            voiced = rng.random() > 0.1
            seg_words.append(
                {
                    "word": rng.choice(vocab),
                    "start": round(t, 3),
                    "end": round(w_end, 3),
                    "speaker_id": speaker,
                    "volume_db": round(rng.uniform(-35, -12), 2),
                    "pitch_hz": round(rng.uniform(90, 260), 2) if voiced else None,
                    "probability": round(rng.uniform(0.6, 1.0), 3),
                }
            )
            t += per_word
        label = rng.choice(["neutral", "happy", "sad", "angry"])
        segments.append(
            {
                "start_time": round(start, 3),
                "end_time": round(t, 3),
                "speaker": {"speaker_id": speaker, "confidence": round(rng.uniform(0.5, 1), 3)},
                "text": " ".join(w["word"] for w in seg_words),
                "words": seg_words,
                "emotion": {
                    "label": label,
                    "score": 0.7,
                    "scores": {
                        "neutral": 0.1,
                        "happy": 0.1,
                        "sad": 0.05,
                        "angry": 0.05,
                        label: 0.7,
                    },
                },
            }
        )
        left -= n
    return {
        "schema_version": "1",
        "metadata": {
            "filename": "video.mp4",
            "duration": round(duration_s, 2),
            "total_segments": len(segments),
            "unique_speakers": speakers,
            "language": "en",
            "language_probability": 0.98,
            "models": {"asr": "tiny.en", "speaker": "resemblyzer-ge2e"},
            "processing_time": {"transcribe": 12.3, "diarize": 3.1},
        },
        "segments": segments,
    }
