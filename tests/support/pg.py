"""A fresh PostgreSQL database per test session on the server at 127.0.0.1:5432.

`ECG_TEST_PG_ADMIN_URL` overrides the server (default: user `root`, falling back to
`postgres`, trust auth). The database is created empty and dropped (forcibly) at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

DEFAULT_ADMIN_URLS = (
    "postgresql://root@127.0.0.1:5432/postgres",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


def admin_url() -> str:
    """The first admin URL that connects."""
    env = os.environ.get("ECG_TEST_PG_ADMIN_URL")
    candidates = (env,) if env else DEFAULT_ADMIN_URLS
    errors: list[str] = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=5):
                return url
        except psycopg.Error as exc:
            errors.append(f"{url}: {exc}")
    raise RuntimeError("no PostgreSQL reachable for tests: " + "; ".join(errors))


def create_database(prefix: str = "ecg_test") -> tuple[str, str]:
    """Create an empty database; (its SQLAlchemy async URL, its name)."""
    admin = admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", name


def drop_database(name: str) -> None:
    """Drop it even while connections linger (PostgreSQL 13+)."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def temporary_database(prefix: str = "ecg_test") -> Iterator[str]:
    """A fresh database for the duration of the block; yields its async URL."""
    url, name = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(name)
