"""The backend dies at the worst moments; every job still completes.

The promises tested are in docs/protocol.md, *Job state machine*.
"""

from __future__ import annotations

import psycopg

from tests.support.net import free_port
from tests.support.procs import wait_for
from tests.support.stack import Stack


def _row(pg_url: str, job_id: str) -> tuple[str, int, object]:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, dispatch_attempts, dispatched_at FROM jobs WHERE job_id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None, f"job {job_id} has no row"
    return str(row[0]), int(row[1]), row[2]


def test_backend_killed_between_request_and_dispatch(stack: Stack) -> None:
    # The ML server is not up yet, so the first dispatch attempt fails and the job waits in
    # the outbox: accepted (row written, 200 answered) but not dispatched.
    backend = stack.start_backend()
    job_id = stack.submit()
    wait_for(
        lambda: _row(stack.pg_url, job_id)[1] >= 1,
        timeout_s=30,
        what="a failed first dispatch attempt",
    )
    backend.kill()
    status, attempts, dispatched_at = _row(stack.pg_url, job_id)
    assert attempts >= 1
    assert status == "pending" and dispatched_at is None

    stack.start_ml()
    stack.start_worker("w")
    stack.start_backend()  # a fresh process: only the database remembers the job
    final = stack.wait_final(job_id, timeout_s=120)
    assert final["status"] == "completed", final
    assert final["result"]["segments"]
    assert stack.completions(job_id) == 1


def test_backend_down_while_ml_finishes_callback_retried(stack: Stack) -> None:
    backend = stack.start_backend()
    stack.start_ml()
    stack.start_worker("w")
    job_id = stack.submit()
    stack.wait_ml(job_id, lambda r: r["status"] == "processing", "the job to start")
    backend.kill()
    # The worker finishes while nobody listens; its completed callback keeps retrying.
    stack.wait_ml(job_id, lambda r: r["status"] == "completed", "the ML side to finish")
    record = stack.store().get(job_id)
    assert record is not None and not record.callback_delivered

    stack.start_backend()
    final = stack.wait_final(job_id, timeout_s=90)
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["result"]["segments"]
    # It was the retried callback that landed (the ML side saw a 2xx).
    stack.wait_ml(job_id, lambda r: r["callback_delivered"], "the callback to be delivered", 60)
    assert stack.completions(job_id) == 1


def test_backend_down_past_callback_retries_reconciler_fetches(stack: Stack) -> None:
    # Few callback attempts: the ML side gives up while the backend is down, so only the
    # backend's reconciler (GET /jobs/{id} after ML_API_TIMEOUT of silence) can finish the job.
    stack.ml_extra["ML_CALLBACK_MAX_ATTEMPTS"] = "2"
    stack.backend_extra["ML_API_TIMEOUT"] = "5"
    backend = stack.start_backend()
    stack.start_ml()
    stack.start_worker("w")
    job_id = stack.submit()
    stack.wait_ml(job_id, lambda r: r["status"] == "processing", "the job to start")
    backend.kill()
    stack.wait_ml(job_id, lambda r: r["status"] == "completed", "the ML side to finish")
    wait_for(
        lambda: (
            f"callback not delivered job_id={job_id} status=completed"
            in stack.workers[0].log_text()
        ),
        timeout_s=30,
        what="the completed callback to be given up",
    )

    # Two replicas come back; both reconcile, and the fetched result is applied once.
    stack.start_backend()
    stack.start_backend(port=free_port())
    final = stack.wait_final(job_id, timeout_s=90)
    assert final["status"] == "completed", final
    assert final["result"]["segments"]
    record = stack.store().get(job_id)
    assert record is not None and not record.callback_delivered  # fetched, not called back
    line = f"job completed (result fetched by reconcile) - job_id={job_id}"
    logs = {p.log_path: p.log_text() for p in stack.backends}  # a restart shares its log
    assert sum(text.count(line) for text in logs.values()) == 1
