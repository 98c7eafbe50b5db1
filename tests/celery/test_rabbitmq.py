"""Celery mode on RabbitMQ: a real `ecg worker` consumes from RabbitMQ, the job state lives in
Redis (ML_RESULT_BACKEND_URL), and the job reaches its final callback.

Skipped where no RabbitMQ listens on 127.0.0.1:5672 (Redis is the broker the rest of the suite
uses; CI machines may not run RabbitMQ).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from kombu.connection import Connection

from ecg_protocol import ProcessRequest
from ml_server.config import MLSettings
from ml_server.executor_celery import CeleryJobExecutor
from ml_server.store_redis import RedisJobStore
from tests.support.procs import ManagedProcess, ecg_command
from tests.support.security import Outpost
from tests.support.services import REDIS_URL

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbit_up() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5672)) == 0


@pytest.mark.skipif(not _rabbit_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_worker_on_rabbitmq_runs_a_job_to_its_final_callback(tmp_path: Path, prefix: str) -> None:
    settings = MLSettings(
        ml_broker_url=AMQP_URL,
        ml_result_backend_url=REDIS_URL,
        ml_redis_prefix=prefix,
        ml_celery_queue=f"{prefix}queue",
        webhook_secret_key="rabbit-secret",
        ml_allowed_private_hosts="127.0.0.5",
        ml_callback_max_attempts=3,
    )
    env = {
        "ML_BROKER_URL": AMQP_URL,
        "ML_RESULT_BACKEND_URL": REDIS_URL,
        "ML_REDIS_PREFIX": prefix,
        "ML_CELERY_QUEUE": f"{prefix}queue",
        "WEBHOOK_SECRET_KEY": "rabbit-secret",
        "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.5",
        "ML_CALLBACK_MAX_ATTEMPTS": "3",
        "ECG_DATA_DIR": str(tmp_path / "data"),
    }
    store = RedisJobStore.from_settings(settings)
    outpost = Outpost()
    worker = ManagedProcess(
        ecg_command("worker", "--hostname", "rabbit@test"),
        env=env,
        log_path=tmp_path / "worker.log",
        name="worker",
    )
    executor = CeleryJobExecutor(settings, store)
    try:
        worker.start()
        worker.wait_until(lambda: store.live_workers() > 0, timeout_s=120, what="models loaded")
        request = ProcessRequest(
            job_id=str(uuid.uuid4()),
            video_url=f"{outpost.base_url}/missing.mp4",  # 404: a fast, specific failure
            fastapi_base_url=outpost.base_url,
        )
        assert store.create_if_absent(request)
        executor.submit(request)
        final = outpost.final_for(request.job_id, timeout_s=60)
        assert final["status"] == "failed" and final["error_code"] == "DOWNLOAD_ERROR", final
        record = store.get(request.job_id)
        assert record is not None and record.status.value == "failed"
        assert store.attempts(request.job_id) == 1
    finally:
        executor.shutdown()
        worker.stop()
        outpost.close()
        # Leave no queue behind.
        with Connection(AMQP_URL, connect_timeout=5) as conn:  # type: ignore[no-untyped-call]
            conn.default_channel.queue_delete(f"{prefix}queue")
