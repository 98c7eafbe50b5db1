"""Fault-suite fixtures: one SeaweedFS per session (shared conftest), a Stack per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg import temporary_database
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Stack, short_clip


@pytest.fixture(scope="session")
def clip() -> Path:
    return short_clip()


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """An empty database per test: replicas and restarts must not see another test's jobs."""
    with temporary_database("ecg_fault") as url:
        yield url


@pytest.fixture
def stack(tmp_path: Path, fresh_pg: str, seaweed: SeaweedS3, clip: Path) -> Iterator[Stack]:
    s = Stack(root=tmp_path, pg_url=fresh_pg, s3=seaweed)
    try:
        yield s
    finally:
        s.stop_all()
