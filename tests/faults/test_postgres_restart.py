"""Restart PostgreSQL while a job is processing: no update is lost and the job completes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg_instance import PgInstance
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Stack


@pytest.fixture
def private_pg() -> Iterator[PgInstance]:
    # Not under pytest's tmp dir: that one is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="ecg-fault-pg-"))
    inst = PgInstance.create(root)
    try:
        yield inst
    finally:
        inst.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_during_processing(
    tmp_path: Path, private_pg: PgInstance, seaweed: SeaweedS3
) -> None:
    stack = Stack(root=tmp_path, pg_url=private_pg.url, s3=seaweed)
    try:
        stack.start_backend()
        stack.start_ml()
        stack.start_worker("w")
        job_id = stack.submit()
        stack.wait_ml(job_id, lambda r: r["status"] == "processing", "the job to start")

        private_pg.restart()  # every backend connection is cut mid-job

        final = stack.wait_final(job_id, timeout_s=120)
        assert final["status"] == "completed", final
        assert final["progress"] == 100
        assert final["result"]["segments"], "the result written after the restart is whole"
        assert stack.completions(job_id) == 1
        # The backend is still healthy on the restarted database.
        stack.backends[0].wait_http_ok(f"{stack.backend_url}/health", timeout_s=30)
    finally:
        stack.stop_all()
