"""Backend fixtures: the real app (lifespan and all) on SQLite and on PostgreSQL, driven through
httpx's ASGI transport; the fake ML server (the one allowed fake) behind it. The helpers they use
(`Backend`, `make_settings`, `open_backend`, `auth`, …) are in tests/support/backend.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.backend import SECRET, Backend, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.pg import temporary_database
from tests.support.seaweed import SeaweedS3


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or the session's PostgreSQL database (shared: use a user of one's own)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ecg.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test (its own PostgreSQL database, or a SQLite file), for
    tests that count every job in the table."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ecg.db'}"
        return
    with temporary_database("ecg_backend") as url:
        yield url


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (for the tests that are about PostgreSQL only)."""
    with temporary_database("ecg_backend") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ecg.db'}"


@pytest.fixture
def fake_ml() -> Iterator[FakeMLServer]:
    with FakeMLServer(secret=SECRET) as server:
        yield server


@pytest.fixture
async def backend(db_url: str, tmp_path: Path, fake_ml: FakeMLServer) -> AsyncIterator[Backend]:
    """The app on SQLite and on PostgreSQL, local storage, the fake ML server behind it."""
    async for b in open_backend(make_settings(tmp_path, db_url, model_server_url=fake_ml.url)):
        yield b


@pytest.fixture
async def sqlite_backend(
    sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer
) -> AsyncIterator[Backend]:
    """The app on SQLite only (for tests where the database does not matter)."""
    async for b in open_backend(make_settings(tmp_path, sqlite_url, model_server_url=fake_ml.url)):
        yield b


@pytest.fixture
async def s3_backend(
    seaweed: SeaweedS3, sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer
) -> AsyncIterator[Backend]:
    """The app on SQLite with its uploads on the session's SeaweedFS (S3, SigV4)."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        model_server_url=fake_ml.url,
        s3_bucket_name=seaweed.buckets[0],
        s3_endpoint_url=seaweed.endpoint,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        aws_region=seaweed.region,
        max_upload_bytes=4000,
    )
    async for b in open_backend(settings):
        yield b
