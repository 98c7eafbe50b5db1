"""One running system for the security suite: backend (JWT on, small upload limit) on
PostgreSQL + SeaweedFS, ML server in Celery mode, one worker; shared by every test here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pg import create_database, drop_database
from tests.support.seaweed import SeaweedS3
from tests.support.security import HOST as OUTPOST_HOST
from tests.support.security import JWT_SECRET, MAX_UPLOAD_BYTES
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def sec_stack(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Stack]:
    # A database of its own: other folders' tests share the session's `pg_url` database.
    pg_url, db_name = create_database("ecg_security")
    stack = Stack(root=tmp_path_factory.mktemp("security"), pg_url=pg_url, s3=seaweed)
    stack.backend_extra.update(
        {"JWT_SECRET": JWT_SECRET, "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    )
    # Only the test outpost (127.0.0.5) may be private: loopback, localhost, S3 on 127.0.0.1,
    # cloud metadata and every private range are refused.
    stack.ml_extra["ML_ALLOWED_PRIVATE_HOSTS"] = OUTPOST_HOST
    # Undeliverable callbacks give up fast, so one refused job never holds the worker long.
    stack.ml_extra["ML_CALLBACK_MAX_ATTEMPTS"] = "3"
    try:
        stack.start_backend()
        stack.start_ml()
        yield stack
    finally:
        stack.stop_all()
        drop_database(db_name)


@pytest.fixture(scope="session")
def worker(sec_stack: Stack) -> Stack:
    """The stack with one Celery worker (for tests that need a job to actually run)."""
    if not sec_stack.workers:
        sec_stack.start_worker("security")
    return sec_stack
