"""Fault-suite fixtures: one SeaweedFS per session (shared conftest), a Stack per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import Stack, short_clip
from tests.support.pg import create_database, drop_database
from tests.support.seaweed import SeaweedS3


@pytest.fixture(scope="session")
def clip() -> Path:
    return short_clip()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """An empty database per test: replicas and restarts must not see another test's jobs."""
    url, name = create_database("ecg_fault")
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def stack(tmp_path: Path, fresh_pg: str, seaweed: SeaweedS3, clip: Path) -> Iterator[Stack]:
    s = Stack(root=tmp_path, pg_url=fresh_pg, s3=seaweed)
    try:
        yield s
    finally:
        s.stop_all()
