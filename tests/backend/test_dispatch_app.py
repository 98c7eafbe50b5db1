"""Dispatch through the real backend: `ecg backend` subprocesses, a real database, the fake ML
server. request-process → signed dispatch → signed callback → status; and a backend killed with
SIGKILL right after answering request-process whose job is dispatched by the next backend.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from ecg_protocol import ProcessRequest
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.pg import create_database, drop_database
from tests.support.procs import ManagedProcess, ecg_command, wait_for
from tests.support.results import RESULT_WIRE

SECRET = "dispatch-app-secret"


def backend(
    *, port: int, database_url: str, ml_url: str, data_dir: Path, log: Path, **env: str
) -> ManagedProcess:
    values = {
        "DATABASE_URL": database_url,
        "MODEL_SERVER_URL": ml_url,
        "WEBHOOK_SECRET_KEY": SECRET,
        "ECG_DATA_DIR": str(data_dir),
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "ML_API_TIMEOUT": "2",
        "DISPATCH_RETRY_DELAYS": "0.3,0.6",
        "DISPATCH_POLL_INTERVAL_S": "30",  # only wake() can make dispatch prompt
        "DISPATCH_LEASE_S": "1",
        "RECONCILE_INTERVAL_S": "3600",
        "RATE_LIMIT_PROCESS": "1000/minute",
    }
    values.update(env)
    return ManagedProcess(
        ecg_command("backend", "--host", "127.0.0.1", "--port", str(port)),
        env=values,
        log_path=log,
        name=f"backend:{port}",
    )


def upload_and_process(base: str) -> str:
    """generate-url → PUT the bytes → request-process; the job id."""
    with httpx.Client(base_url=base, timeout=10) as client:
        r = client.post(
            "/api/upload-video/generate-url",
            json={"filename": "clip.mp4", "content_type": "video/mp4"},
        )
        assert r.status_code == 200, r.text
        up = r.json()
        put = httpx.put(
            up["presigned_url"],
            content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096,
            headers={"Content-Type": "video/mp4"},
            timeout=10,
        )
        assert put.status_code in (200, 201, 204), put.text
        r = client.post("/api/upload-video/request-process", json={"fileKey": up["file_key"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["message"] == "Video processing started."
        return str(body["job_id"])


def status(base: str, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/upload-video/status/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_request_process_dispatches_at_once_and_result_comes_back(
    empty_db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        FakeMLServer(secret=SECRET) as fake,
        backend(
            port=port,
            database_url=empty_db_url,
            ml_url=fake.url,
            data_dir=tmp_path / "data",
            log=tmp_path / "backend.log",
        ) as proc,
    ):
        proc.wait_http_ok(f"{base}/health", timeout_s=60)
        job_id = upload_and_process(base)

        # Prompt: the poll interval is 30 s, so only the wake-up after the commit explains it.
        wait_for(lambda: bool(fake.process_requests(job_id)), timeout_s=5, what="dispatch")
        [req] = fake.process_requests(job_id)
        assert req.verified, "the ML server must accept the backend's signature"
        sent = ProcessRequest.model_validate_json(req.body)
        assert sent.fastapi_base_url == base
        assert sent.language == "auto"
        video = httpx.get(sent.video_url, timeout=10)  # the ML server can download it
        assert video.status_code == 200 and video.content.startswith(b"\x00\x00\x00\x18ftyp")

        assert status(base, job_id)["status"] == "pending"
        callback = fake.finish(job_id, RESULT_WIRE)
        assert callback is not None and callback.result(timeout=10) == 200
        proc.wait_until(
            lambda: status(base, job_id)["status"] == "completed",
            timeout_s=10,
            what="completed status",
        )
        done = status(base, job_id)
        assert done["progress"] == 100
        seg = done["result"]["segments"][0]
        assert (seg["start"], seg["end"]) == (4.908, 8.754)
        assert fake.accepted[job_id] == 1


def test_backend_killed_after_request_process_dispatches_after_restart(
    tmp_path: Path,
) -> None:
    url, name = create_database(prefix="ecg_dispatch_kill")
    try:
        _killed_and_restarted(url, tmp_path)
    finally:
        drop_database(name)


def _killed_and_restarted(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = FakeMLServer(secret=SECRET)  # not started: the ML server is down at first
    common: dict[str, Any] = {
        "port": port,
        "database_url": database_url,
        "ml_url": fake.url,
        "data_dir": tmp_path / "data",
        "log": tmp_path / "backend.log",
        "DISPATCH_RETRY_DELAYS": "1,1,1",
    }
    first = backend(**common).start()
    try:
        first.wait_http_ok(f"{base}/health", timeout_s=60)
        job_id = upload_and_process(base)
        # The first backend tries, cannot reach the ML server, schedules a retry — and dies.
        # Wait for the retry to be recorded (logged after its commit), not for the failure: a
        # kill between the two leaves the claim's lease, which outlives this test's wait.
        first.wait_until(
            lambda: f"retrying job in 1.0s (1/3) - job_id={job_id}" in first.log_text(),
            timeout_s=10,
            what="the first attempt's retry",
        )
    finally:
        first.kill()
    assert not fake.process_requests()

    # The restarted backend may come up just before the retry is due (it did in CI) or after
    # a lease left by a kill mid-send runs out (≤ 4 s here); 30 s is for a loaded machine. Its
    # send may wait on a fake ML server in this (loaded) process: 10 s before it gives up.
    with fake, backend(**common, ML_API_TIMEOUT="10") as second:
        second.wait_http_ok(f"{base}/health", timeout_s=60)
        second.wait_until(
            lambda: fake.accepted[job_id] == 1, timeout_s=30, what="dispatch after restart"
        )
        assert fake.all_verified()
        callback = fake.finish(job_id, RESULT_WIRE)
        assert callback is not None and callback.result(timeout=10) == 200
        second.wait_until(
            lambda: status(base, job_id)["status"] == "completed",
            timeout_s=10,
            what="completed status",
        )
    assert uuid.UUID(job_id)
    assert sum(fake.accepted.values()) == 1


def test_two_backend_processes_on_one_postgresql_send_each_job_once(tmp_path: Path) -> None:
    url, name = create_database(prefix="ecg_dispatch_two")
    try:
        _two_backends(url, tmp_path)
    finally:
        drop_database(name)


def _two_backends(database_url: str, tmp_path: Path) -> None:
    n_jobs = 200
    with FakeMLServer(secret=SECRET) as fake:
        fake.behaviour.delay_s = 0.05  # sends overlap, so both replicas hold claims at once
        procs = []
        for i in (1, 2):
            port = free_port()
            procs.append(
                backend(
                    port=port,
                    database_url=database_url,
                    ml_url=fake.url,
                    data_dir=tmp_path / f"data{i}",
                    log=tmp_path / f"backend{i}.log",
                    DISPATCH_POLL_INTERVAL_S="0.02",
                ).start()
            )
        try:
            for proc, port in zip(procs, _ports(procs), strict=True):
                proc.wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=60)
            ids = _insert_pending(database_url, n_jobs)
            wait_for(
                lambda: len(fake.accepted) == n_jobs,
                timeout_s=60,
                what=f"{n_jobs} jobs dispatched",
            )
            assert set(fake.accepted) == {str(j) for j in ids}
            assert set(fake.process_posts.values()) == {1}, "a job was sent twice"
            sent_by = [p.log_text().count("sending job to ML server") for p in procs]
            assert sum(sent_by) == n_jobs
            assert all(n > 0 for n in sent_by), f"one replica sent nothing: {sent_by}"
        finally:
            for proc in procs:
                proc.stop()


def _ports(procs: list[ManagedProcess]) -> list[int]:
    return [int(p.cmd[p.cmd.index("--port") + 1]) for p in procs]


def _insert_pending(database_url: str, n: int) -> list[uuid.UUID]:
    """Pending rows written straight to the table (the outbox), as request-process leaves them."""
    from sqlalchemy import create_engine, insert

    from app.models.job import Job

    ids = [uuid.uuid4() for _ in range(n)]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Job),
                [
                    {
                        "job_id": jid,
                        "owner": "anonymous",
                        "status": "pending",
                        "progress": 0,
                        "video_url": f"http://storage.test/{jid}.mp4",
                        "file_key": f"videos/anonymous/20240101_000000_abcd1234_{jid.hex[:6]}.mp4",
                        "language": "auto",
                        "dispatch_attempts": 0,
                        "redispatch_count": 0,
                    }
                    for jid in ids
                ],
            )
    finally:
        engine.dispose()
    return ids
