"""kill -9 the Celery worker mid-job: the job is redelivered, runs again and completes once."""

from __future__ import annotations

from tests.faults.stack import Stack


def test_worker_killed_mid_job_completes_after_redelivery(stack: Stack) -> None:
    stack.start_backend()
    stack.start_ml()
    first = stack.start_worker("first")

    job_id = stack.submit()
    # Mid-job: the worker holds the job's lease and the pipeline is past the download.
    stack.wait_ml(
        job_id,
        lambda r: r["status"] == "processing" and r["progress"] >= 10,
        "the job to be mid-pipeline on the first worker",
    )
    first.kill()  # kill -9 the whole worker (main process and its pool process)
    assert stack.store().attempts(job_id) == 1

    stack.start_worker("second")
    status = stack.wait_final(job_id, timeout_s=180)

    assert status["status"] == "completed", status
    assert status["progress"] == 100
    assert status["result"]["segments"], "the redelivered run produced a transcript"
    assert stack.store().attempts(job_id) == 2  # delivered twice, run to completion once
    assert stack.completions(job_id) == 1
