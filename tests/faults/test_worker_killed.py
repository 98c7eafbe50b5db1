"""kill -9 the Celery worker mid-job: the job is redelivered, runs again and completes once."""

from __future__ import annotations

import os
import signal
import time

from tests.support.stack import Stack


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


def test_whole_worker_lost_is_rescued_long_before_the_visibility_timeout(stack: Stack) -> None:
    # A lost machine: the worker's main process and pool die together (no requeue), and its
    # message would come back only after an hour. The API's orphan rescue sees the job's lease
    # expire and re-publishes it; a fresh worker runs it once.
    stack.ml_extra["ML_VISIBILITY_TIMEOUT_S"] = "3600"
    stack.ml_extra["ML_JOB_LEASE_S"] = "3"
    stack.start_backend()
    stack.start_ml()
    first = stack.start_worker("first")
    job_id = stack.submit()
    stack.wait_ml(
        job_id, lambda r: r["status"] == "processing" and r["progress"] >= 10, "mid-pipeline"
    )
    first.kill()  # SIGKILL the whole process group
    killed_at = time.monotonic()
    assert stack.store().attempts(job_id) == 1

    stack.start_worker("second")
    status = stack.wait_final(job_id, timeout_s=90)
    took = time.monotonic() - killed_at

    assert status["status"] == "completed", status
    assert status["result"]["segments"]
    assert took < 90, took
    assert stack.store().attempts(job_id) == 2  # the rescued delivery ran it, once
    assert stack.completions(job_id) == 1
    assert stack.ml is not None
    assert f"job_id={job_id}: its worker was lost" in stack.ml.log_text()


def test_pool_process_killed_is_requeued_at_once(stack: Stack) -> None:
    # Only the pool process dies (as on an OOM kill): the worker's main process rejects the
    # message back onto the queue (task_reject_on_worker_lost), and a fresh pool process runs it.
    stack.start_backend()
    stack.start_ml()
    stack.start_worker("w")
    job_id = stack.submit()
    stack.wait_ml(
        job_id, lambda r: r["status"] == "processing" and r["progress"] >= 10, "mid-pipeline"
    )
    owner = stack.store().lease_owner(job_id)
    assert owner is not None
    pool_pid = int(owner.split(":")[1])
    os.kill(pool_pid, signal.SIGKILL)

    status = stack.wait_final(job_id, timeout_s=120)
    assert status["status"] == "completed", status
    assert stack.store().attempts(job_id) == 2
    assert stack.completions(job_id) == 1


def test_attempts_are_bounded_then_worker_lost(stack: Stack) -> None:
    # With one attempt allowed, a second delivery after a crash fails the job WORKER_LOST
    # instead of running it again: a job whose worker keeps dying never loops forever.
    stack.ml_extra["ML_MAX_ATTEMPTS"] = "1"
    stack.start_backend()
    stack.start_ml()
    first = stack.start_worker("first")
    job_id = stack.submit()
    stack.wait_ml(
        job_id, lambda r: r["status"] == "processing" and r["progress"] >= 10, "mid-pipeline"
    )
    first.kill()
    stack.start_worker("second")

    status = stack.wait_final(job_id, timeout_s=120)
    assert status["status"] == "failed", status
    assert status["error_code"] == "WORKER_LOST"
    assert stack.completions(job_id) == 0
