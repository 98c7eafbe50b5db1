"""`ecg up` wiring: both children learn each other's URL, share one secret, and the ML server
allow-lists exactly the loopback hosts the backend hands it (pure function, no processes)."""

from __future__ import annotations

from pathlib import Path

from ecg_cli.up import child_envs, connect_host
from ecg_protocol.secret import load_or_create_secret


def test_embedded_wiring_generates_one_shared_secret(tmp_path: Path) -> None:
    backend, ml = child_envs(
        {"PATH": "/usr/bin"}, host="127.0.0.1", backend_port=8000, ml_port=8080, data_dir=tmp_path
    )
    assert backend["MODEL_SERVER_URL"] == "http://127.0.0.1:8080"
    assert backend["FASTAPI_BASE_URL"] == "http://127.0.0.1:8000"
    assert backend["WEBHOOK_SECRET_KEY"] == ml["WEBHOOK_SECRET_KEY"]
    assert backend["WEBHOOK_SECRET_KEY"] == load_or_create_secret(tmp_path)  # kept, not per run
    assert ml["ML_ALLOWED_PRIVATE_HOSTS"] == "127.0.0.1"
    assert backend["ECG_DATA_DIR"] == ml["ECG_DATA_DIR"] == str(tmp_path)


def test_production_settings_are_kept(tmp_path: Path) -> None:
    env = {
        "WEBHOOK_SECRET_KEY": "from-the-operator",
        "FASTAPI_BASE_URL": "https://ecg.example.com",
        "ML_ALLOWED_PRIVATE_HOSTS": "10.0.0.0/8",
        "S3_ENDPOINT_URL": "http://127.0.0.1:8333",
        "DATABASE_URL": "postgresql+psycopg://ecg@db/ecg",
    }
    backend, ml = child_envs(
        env, host="0.0.0.0", backend_port=9000, ml_port=9080, data_dir=tmp_path
    )
    assert backend["WEBHOOK_SECRET_KEY"] == ml["WEBHOOK_SECRET_KEY"] == "from-the-operator"
    assert not (tmp_path / "webhook_secret").exists()
    assert backend["FASTAPI_BASE_URL"] == "https://ecg.example.com"
    assert backend["MODEL_SERVER_URL"] == "http://127.0.0.1:9080"
    assert backend["DATABASE_URL"] == env["DATABASE_URL"]
    assert ml["ML_ALLOWED_PRIVATE_HOSTS"].split(",") == [
        "10.0.0.0/8",
        "127.0.0.1",
        "ecg.example.com",
    ]


def test_connect_host_for_wildcard_binds() -> None:
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("192.168.1.5") == "192.168.1.5"
