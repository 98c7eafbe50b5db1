"""`ecg ml-server` as a process: SIGTERM while a job runs stops it promptly and cleanly."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.ml_service import new_job_id, request_body, start_ml_server
from tests.support.procs import wait_for


def test_sigterm_with_a_running_job_exits_without_a_final_callback(
    tmp_path: Path, receiver: CallbackReceiver, media_server: MediaServer
) -> None:
    with start_ml_server(tmp_path, tmp_path) as server:
        proc = server.proc
        job_id = new_job_id()
        slow = media_server.url(f"/trickle?s=60&id={job_id}")
        assert server.post(request_body(job_id, slow, receiver.base_url)).status_code == 202
        wait_for(
            lambda: server.job(job_id)["status"] == "processing",
            timeout_s=60,
            what="the job to start",
        )
        proc.signal(signal.SIGTERM)
        # uvicorn re-raises the captured SIGTERM after a clean shutdown, hence -15.
        assert proc.wait_exit(timeout_s=20) in (0, -signal.SIGTERM)
    # Abandoned, not failed: the backend's reconciler re-dispatches a job the server lost.
    assert receiver.finals(job_id, accepted_only=False) == []
    assert "abandoned at shutdown" in proc.log_text()
    assert "Application shutdown complete" in proc.log_text()
    assert list(tmp_path.glob("ecg-ml-*")) == []
