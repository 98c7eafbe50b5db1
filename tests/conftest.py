"""Shared fixtures for every test folder: free ports, a fresh PostgreSQL database per session,
a real S3 server (SeaweedFS) per session.

    def test_x(free_port: Callable[[], int], pg_url: str, seaweed: SeaweedS3) -> None: ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port as _free_port
from tests.support.pg import create_database, drop_database
from tests.support.seaweed import SeaweedS3


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a TCP port that is free right now: `port = free_port()`."""
    return _free_port


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """`postgresql+psycopg://…` of an empty database made for this session, dropped after."""
    url, name = create_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server with SigV4 auth on and bucket `ecg-test`, for the session."""
    data_dir: Path = tmp_path_factory.mktemp("seaweed")
    server = SeaweedS3.start(data_dir, buckets=["ecg-test"])
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("ECG_KEEP_SEAWEED_DATA") != "1":
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
