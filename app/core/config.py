"""Backend settings: the one reader of the backend's environment (README, *Configuration*)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecg_protocol.secret import (
    CLIENT_SECRET_FILE,
    default_data_dir,
    load_or_create_secret,
    new_whsec,
)

DEFAULT_CONTENT_TYPES = (
    "video/mp4,video/quicktime,video/webm,video/x-matroska,video/x-msvideo,video/mpeg,"
    "video/ogg,video/3gpp,audio/mpeg,audio/mp4,audio/wav,audio/x-wav,audio/wave,audio/webm,"
    "audio/ogg,audio/flac,audio/aac,audio/x-m4a"
)


class Settings(BaseSettings):
    """Every backend setting, with the default the README's configuration table lists."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # ML server (names from the guide, docs/guide.md).
    model_server_url: str | None = None
    ml_api_server_url: str | None = None  # legacy alias of MODEL_SERVER_URL
    ml_api_timeout: float = 300.0
    fastapi_base_url: str = "http://localhost:8000"
    ml_health_timeout: float = 10.0

    # Storage. No bucket → embedded local storage in the data dir.
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_region: str = "ap-northeast-2"
    s3_bucket_name: str | None = None
    s3_presigned_url_expire: int = 3600
    s3_endpoint_url: str | None = None
    max_upload_bytes: int = 2 * 1024**3
    allowed_content_types: str = DEFAULT_CONTENT_TYPES

    # Database. Unset → SQLite file in the data dir.
    database_url: str | None = None
    ecg_data_dir: Path = Field(default_factory=default_data_dir)

    # Signing.
    webhook_secret_key: str | None = None
    secret_key: str | None = None
    # Off: a callback must carry the Standard Webhooks headers (timestamp, replay window). On:
    # one signed only with X-Signature-256 (a guide-era ML server) is accepted too — weaker, it
    # has no timestamp, so a captured callback can be replayed.
    webhook_allow_legacy_signature: bool = False
    webhook_tolerance_s: int = 300
    webhook_max_bytes: int = 64 * 1024**2  # largest callback body accepted (a result is ~3 MB)
    # Largest body of any other JSON request (generate-url, request-process are < 2 KB).
    max_json_body_bytes: int = 64 * 1024

    # Auth and limits.
    jwt_secret: str | None = None  # HS256 key for Bearer tokens; unset → tokens refused
    # Longest a token may live (exp − iat, or exp − now without iat); `exp` is required.
    jwt_max_lifetime_s: int = Field(default=86400, gt=0)
    allow_anonymous: bool = True
    # Client webhooks: request-process's `webhook_url` hears job.completed / job.failed.
    client_webhook_secret: str | None = None  # whsec_…; unset → generated once in the data dir
    webhook_allowed_private_hosts: str = ""  # comma-separated hosts/CIDRs allowed to be private
    client_webhook_max_attempts: int = Field(default=8, ge=1)
    client_webhook_backoff_s: float = Field(default=5.0, gt=0)  # doubles per attempt, ≤ 1 h
    client_webhook_timeout_s: float = Field(default=10.0, gt=0)

    # How long the one-call API (`POST /v1/audio/transcriptions`) holds the request open.
    sync_wait_timeout_s: float = 900.0
    rate_limit_process: str = "5/minute"  # per client IP; "0/minute" turns it off
    # Shared counter store for several replicas (redis://host:6379/0); unset → per replica.
    rate_limit_storage_url: str | None = None
    trust_forwarded_for: bool = False

    # Dispatch and reconciliation (docs/protocol.md, *Job state machine*).
    dispatch_retry_delays: str = "5,10"  # seconds between attempts; guide: 5 s, 10 s
    dispatch_poll_interval_s: float = 1.0
    dispatch_lease_s: float = 60.0
    reconcile_interval_s: float = 30.0
    reconcile_max_redispatch: int = 2
    # A dispatched job whose ML server cannot be reached fails ML_SERVER_UNREACHABLE once it has
    # gone unheard for max(ML_UNREACHABLE_DEADLINE_S, factor × media duration); the duration is
    # read with ffprobe, and the deadline alone applies when it cannot be read. Policy, not
    # fitted: 30 min covers an ML server restart or redeploy; 3× the media length is headroom
    # over the slowest supported setup (large Whisper on CPU ≈ real time; docs/protocol.md).
    ml_unreachable_deadline_s: float = 1800.0
    ml_unreachable_duration_factor: float = 3.0

    # Status hot path (app/services/status.py): answers cached per replica.
    status_cache_ttl_s: float = 0.5  # open jobs; 0 disables
    status_cache_final_ttl_s: float = 3600.0  # completed/failed answers never change
    status_cache_max_bytes: int = 64 * 1024**2

    @model_validator(mode="after")
    def _alias_ml_url(self) -> Settings:
        if not self.model_server_url and self.ml_api_server_url:
            self.model_server_url = self.ml_api_server_url
        return self

    @property
    def content_types(self) -> frozenset[str]:
        return frozenset(t.strip().lower() for t in self.allowed_content_types.split(",") if t)

    @property
    def retry_delays(self) -> list[float]:
        return [float(x) for x in self.dispatch_retry_delays.split(",") if x.strip()]

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_bucket_name)

    def resolved_database_url(self) -> str:
        """`DATABASE_URL`, else the embedded SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        self.ecg_data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{self.ecg_data_dir / 'ecg.db'}"

    def client_webhook_signing_secret(self) -> str:
        """`CLIENT_WEBHOOK_SECRET`, else a `whsec_` secret generated once in the data dir."""
        return self.client_webhook_secret or load_or_create_secret(
            self.ecg_data_dir, CLIENT_SECRET_FILE, new_whsec
        )

    @property
    def webhook_private_hosts(self) -> list[str]:
        return [h.strip() for h in self.webhook_allowed_private_hosts.split(",") if h.strip()]

    def signing_secret(self) -> str:
        """`WEBHOOK_SECRET_KEY`, else `SECRET_KEY`, else the one kept in the data dir."""
        return (
            self.webhook_secret_key or self.secret_key or load_or_create_secret(self.ecg_data_dir)
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
