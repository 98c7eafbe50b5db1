"""One running system for the security suite: backend (JWT on, small upload limit) on
PostgreSQL + SeaweedFS, ML server in Celery mode, one worker; shared by every test here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.stack import Stack
from tests.support.seaweed import SeaweedS3

JWT_SECRET = "security-suite-jwt-secret-0123456789abcdef"
MAX_UPLOAD_BYTES = 400_000


@pytest.fixture(scope="session")
def sec_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, seaweed: SeaweedS3
) -> Iterator[Stack]:
    stack = Stack(root=tmp_path_factory.mktemp("security"), pg_url=pg_url, s3=seaweed)
    stack.backend_extra.update(
        {"JWT_SECRET": JWT_SECRET, "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    )
    # Only the test media server on 127.0.0.1 may be private; everything else is refused.
    stack.ml_extra["ML_ALLOWED_PRIVATE_HOSTS"] = "127.0.0.1"
    try:
        stack.start_backend()
        stack.start_ml()
        yield stack
    finally:
        stack.stop_all()
