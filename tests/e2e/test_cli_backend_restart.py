"""`ecg analyze` rides out a backend restart in the middle of a job: the job lives in the
database, the ML server retries its callbacks, and the CLI keeps polling through the outage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.media import dialogue
from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ManagedProcess, ecg_command
from tests.support.transcripts import word_error_rate


def test_analyze_survives_a_backend_restart(tmp_path: Path) -> None:
    media = dialogue("wav", long=True)  # ≥ 60 s: long enough to restart the backend meanwhile
    backend_port, ml_port = free_port(), free_port()
    backend_url = f"http://127.0.0.1:{backend_port}"
    common = {"ECG_DATA_DIR": str(tmp_path / "data"), "WEBHOOK_SECRET_KEY": "restart-test"}
    ml = ManagedProcess(
        ecg_command("ml-server", "--port", str(ml_port)),
        env={**common, "ML_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"},
        inherit_env=False,
        log_path=tmp_path / "ml.log",
        name="ml-server",
    )
    backend_env = {
        **common,
        "MODEL_SERVER_URL": f"http://127.0.0.1:{ml_port}",
        "FASTAPI_BASE_URL": backend_url,
        "ML_CALLBACK_BACKOFF_MAX_S": "2",
    }

    def backend() -> ManagedProcess:
        return ManagedProcess(
            ecg_command("backend", "--port", str(backend_port)),
            env=backend_env,
            inherit_env=False,
            log_path=tmp_path / "backend.log",
            name="backend",
        )

    out = tmp_path / "out.json"
    with ml:
        ml.wait_http_ok(f"http://127.0.0.1:{ml_port}/health", timeout_s=120)
        first = backend().start()
        try:
            first.wait_http_ok(f"{backend_url}/health", timeout_s=120)
            cli = subprocess.Popen(
                ecg_command(
                    "analyze", str(media.path), "--backend", backend_url, "--json", str(out)
                ),
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            )

            def job_started() -> bool:
                # Anonymous jobs are unlisted (GET /api/jobs is empty): the log says it.
                return "new processing request" in first.log_text()

            first.wait_until(job_started, timeout_s=60, what="the CLI's job to exist")
        finally:
            first.stop()
        second = backend().start()
        try:
            second.wait_http_ok(f"{backend_url}/health", timeout_s=120)
            stdout, stderr = cli.communicate(timeout=300)
        finally:
            second.stop()
    assert cli.returncode == 0, stderr + "\n" + second.log_tail()
    assert "completed" in stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    text = " ".join(s["text"] for s in result["segments"])
    assert word_error_rate(media.text, text) <= 0.15
