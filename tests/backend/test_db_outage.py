"""PostgreSQL going away under a running backend: no 500s.

Pooled connections killed by the server (what a restart does) are replaced on checkout
(`pool_pre_ping`); a database that refuses connections altogether answers 503 with a JSON body
and `Retry-After`, on every route that needs it, and the backend recovers once it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.api.errors import ErrorBody
from tests.support.backend import Backend, auth, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.pg import admin_url, create_database, drop_database
from tests.support.results import processing


@pytest.fixture
def own_pg() -> Iterator[tuple[str, str]]:
    """A database of this test's own (its connections are killed; nobody else's are)."""
    url, name = create_database(prefix="ecg_outage")
    try:
        yield url, name
    finally:
        drop_database(name)


@pytest.fixture
async def pg_backend(
    own_pg: tuple[str, str], tmp_path: Path, fake_ml: FakeMLServer
) -> AsyncIterator[Backend]:
    url, _ = own_pg
    async for b in open_backend(make_settings(tmp_path, url, model_server_url=fake_ml.url)):
        yield b


def _terminate(name: str, *, allow_connections: bool | None = None) -> int:
    """Kill every connection to database `name` (optionally refusing new ones first)."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        if allow_connections is not None:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.SQL("true" if allow_connections else "false")
                )
            )
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


async def test_killed_connections_are_replaced(
    pg_backend: Backend, own_pg: tuple[str, str]
) -> None:
    job_id = await pg_backend.start_job()
    assert (
        await pg_backend.client.get("/api/jobs", headers=auth("outage-user"))
    ).status_code == 200
    assert _terminate(own_pg[1]) >= 1  # the pool's connections die, as in a restart
    for _ in range(3):  # more requests than one connection: every pooled one was killed
        r = await pg_backend.client.get("/api/jobs", headers=auth("outage-user"))
        assert r.status_code == 200, r.text
    r = await pg_backend.callback(processing(job_id, 30))
    assert r.status_code == 200, r.text


async def test_database_refusing_connections_is_503(
    pg_backend: Backend, own_pg: tuple[str, str]
) -> None:
    job_id = await pg_backend.start_job()
    key = await pg_backend.upload()
    _terminate(own_pg[1], allow_connections=False)
    try:
        answers = {
            "list": await pg_backend.client.get("/api/jobs", headers=auth("outage-user")),
            "status": await pg_backend.status("00000000-0000-4000-8000-000000000000"),
            "callback": await pg_backend.callback(processing(job_id, 50)),
            "request-process": await pg_backend.client.post(
                "/api/upload-video/request-process", json={"fileKey": key}
            ),
        }
        for what, r in answers.items():
            assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
            assert r.headers["retry-after"].isdigit(), what
            body = ErrorBody.model_validate(r.json())
            assert body.error == "DATABASE_UNAVAILABLE", what
            assert "psycopg" not in r.text.lower(), "internals leaked"
        health = await pg_backend.client.get("/health")
        assert health.status_code == 503
    finally:
        _terminate(own_pg[1], allow_connections=True)
    r = await pg_backend.callback(processing(job_id, 60))  # the ML server's retry succeeds
    assert r.status_code == 200, r.text
    assert (await pg_backend.status(job_id)).json()["progress"] == 60
