"""Two backend replicas, two Celery workers, eight jobs at once: each job is dispatched once,
run once and completed once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.net import free_port
from tests.support.stack import Stack

JOBS = 8


def test_two_workers_eight_jobs_each_completes_exactly_once(stack: Stack) -> None:
    stack.start_backend()
    second_port = free_port()
    stack.start_backend(port=second_port)
    replicas = [stack.backend_url, f"http://127.0.0.1:{second_port}"]
    stack.start_ml()
    stack.start_worker("one")
    stack.start_worker("two")

    keys = [stack.upload() for _ in range(JOBS)]
    with ThreadPoolExecutor(JOBS) as pool:  # submitted at once, spread over both replicas
        job_ids = list(
            pool.map(
                lambda i: stack.request_process(keys[i], base_url=replicas[i % 2]), range(JOBS)
            )
        )
    assert len(set(job_ids)) == JOBS

    finals = [stack.wait_final(job_id, timeout_s=300) for job_id in job_ids]
    assert [f["status"] for f in finals] == ["completed"] * JOBS, finals
    assert all(f["result"]["segments"] for f in finals)

    ml_log = stack.ml.log_text() if stack.ml else ""
    backend_logs = [p.log_text() for p in stack.backends]
    worker_logs = [w.log_text() for w in stack.workers]
    for job_id in job_ids:
        assert ml_log.count(f"queued job_id={job_id}") == 1, job_id  # dispatched once
        assert f"duplicate /process job_id={job_id}" not in ml_log
        assert stack.store().attempts(job_id) == 1  # delivered to one worker once
        assert stack.completions(job_id) == 1  # one pipeline run completed
        applied = sum(log.count(f"job completed: job_id={job_id}") for log in backend_logs)
        assert applied == 1  # one completion applied across both replicas
    # Both workers took part (one job at a time each).
    assert all("attempt 1 on" in log for log in worker_logs)
