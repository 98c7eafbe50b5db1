"""Migrations match the models on both databases; the embedded default runs with no config;
the database URL is normalized; concurrent duplicate callbacks apply once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from app.db.database import create_engine, normalize_database_url, run_migrations
from app.models.job import Base
from ecg_protocol import sign_headers
from tests.support.backend import SECRET, Backend
from tests.support.net import free_port
from tests.support.results import completed, processing


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrations_match_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await run_migrations(engine)
        await run_migrations(engine)  # idempotent: a restart migrates nothing
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_normalize_database_url(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


async def test_concurrent_duplicate_callbacks_apply_once(backend: Backend) -> None:
    job_id = await backend.start_job()
    body = json.dumps(completed(job_id)).encode()
    headers = {**sign_headers(body, SECRET, msg_id="msg_race"), "Content-Type": "application/json"}
    answers = await asyncio.gather(
        *(
            backend.client.post("/api/upload-video/result", content=body, headers=headers)
            for _ in range(5)
        )
    )
    statuses = sorted(r.json()["status"] for r in answers)
    assert all(r.status_code == 200 for r in answers)
    assert statuses.count("received") == 1, statuses
    assert (await backend.status(job_id)).json()["status"] == "completed"


async def test_concurrent_progress_ends_at_the_highest(backend: Backend) -> None:
    job_id = await backend.start_job()
    await asyncio.gather(*(backend.callback(processing(job_id, p)) for p in (10, 70, 30, 50)))
    assert (await backend.status(job_id)).json()["progress"] == 70


def test_embedded_default_with_no_configuration(tmp_path: Path) -> None:
    """`ecg backend` with nothing but a data dir: SQLite, local storage, a generated secret."""
    port = free_port()
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["ECG_DATA_DIR"] = str(tmp_path / "data")
    env["FASTAPI_BASE_URL"] = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "backend.log"
    with log_path.open("wb") as log:  # a file, not a pipe: a chatty server never blocks
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecg_cli.main", "backend", "--port", str(port)],
            env=env,
            cwd=Path(__file__).parents[2],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "backend did not come up"
            time.sleep(0.2)
        health = httpx.get(f"{base}/health").json()
        assert health["storage"] == "local"
        r = httpx.post(
            f"{base}/api/upload-video/generate-url",
            json={"filename": "x.mp4", "content_type": "video/mp4"},
        )
        put = httpx.put(
            r.json()["presigned_url"], content=b"\x01" * 100, headers={"Content-Type": "video/mp4"}
        )
        assert put.status_code == 200
        r = httpx.post(
            f"{base}/api/upload-video/request-process", json={"fileKey": r.json()["file_key"]}
        )
        assert r.status_code == 200
        status = httpx.get(f"{base}/api/upload-video/status/{r.json()['job_id']}").json()
        assert status["status"] in ("pending", "failed")
        data = tmp_path / "data"
        assert (data / "ecg.db").exists() and (data / "webhook_secret").exists()
        assert (data / "webhook_secret").stat().st_mode & 0o077 == 0
        assert any((data / "storage" / "objects").rglob("*.mp4"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
