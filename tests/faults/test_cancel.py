"""GET /jobs/{id} and DELETE /jobs/{id} on the ML server API act on a job that a worker process
runs: state and cancellation travel through the shared Redis store."""

from __future__ import annotations

from tests.support.ml_requests import cancel_job, get_job
from tests.support.stack import SECRET, Stack


def test_status_and_cancel_across_processes(stack: Stack) -> None:
    stack.start_backend()
    stack.start_ml()
    stack.start_worker("w")
    job_id = stack.submit()
    stack.wait_ml(job_id, lambda r: r["status"] == "processing", "the worker to start the job")

    seen = get_job(stack.ml_url, job_id, SECRET)
    assert seen.status_code == 200 and seen.json()["status"] == "processing"

    cancel = cancel_job(stack.ml_url, job_id, SECRET)
    assert cancel.status_code == 202, cancel.text

    final = stack.wait_final(job_id, timeout_s=60)
    assert final["status"] == "failed" and final["error_code"] == "CANCELLED", final
    after = get_job(stack.ml_url, job_id, SECRET).json()
    assert after["status"] == "cancelled" and after["cancel_requested"] is True
    assert stack.completions(job_id) == 0
    # A cancelled job cannot be cancelled again.
    assert cancel_job(stack.ml_url, job_id, SECRET).status_code == 409
