"""Named faster-whisper models in the Hugging Face cache: find, pull (sha-checked) and list.

A faster-whisper name (`large-v3`, `turbo`, `small`; faster_whisper.utils' map) or a Hub repo id
(`Systran/faster-whisper-small`) is kept where the ecosystem keeps it: the Hugging Face cache
(`HF_HOME`, `HF_HUB_CACHE`), downloaded by `huggingface_hub` from `HF_ENDPOINT`. huggingface_hub
checks a download's size, not its content; every file pulled here is checked against the hash
the cache names it by (an LFS file's blob is named by its sha256, any other file's by its git
blob sha1), and a file that does not match is deleted and the pull refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# What faster-whisper itself fetches of a model repo (faster_whisper.utils.download_model).
ALLOW_PATTERNS = [
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
]
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_CHUNK = 4 * 1024 * 1024


class ModelUnavailable(RuntimeError):
    """A named model is not in the local cache and may not be downloaded, or cannot be."""


class ModelIntegrityError(RuntimeError):
    """A pulled file does not match the hash it was published with (it was deleted)."""


def faster_whisper_models() -> dict[str, str]:
    """faster-whisper's names → Hub repo ids (`large-v3` → `Systran/faster-whisper-large-v3`)."""
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


def repo_for(name: str) -> str | None:
    """The Hub repo of a model name; None for a bundled model or a local folder."""
    if name.startswith("bundled:") or Path(name).is_dir():
        return None
    if "/" in name:
        return name if re.fullmatch(r"[\w.-]+/[\w.-]+", name) else None
    return faster_whisper_models().get(name)


def is_hub_name(name: str) -> bool:
    return repo_for(name) is not None


def cached_path(name: str) -> Path | None:
    """The cached snapshot folder of `name`, complete; None when it is not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = _repo(name)
    try:
        return Path(snapshot_download(repo, allow_patterns=ALLOW_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None


def pull(name: str, *, tqdm_class: Any = None) -> Path:
    """Download `name` into the cache (what is there already is kept), then check every file."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo = _repo(name)
    logger.info("pulling %s (%s)", name, repo)
    try:
        folder = Path(snapshot_download(repo, allow_patterns=ALLOW_PATTERNS, tqdm_class=tqdm_class))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ModelUnavailable(f"could not download {name} ({repo}): {_reason(exc)}") from exc
    verify_snapshot(folder)
    return folder


def _reason(exc: BaseException) -> str:
    """The error in one line: huggingface_hub wraps the HTTP error and adds advice lines."""
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return " ".join(lines[:2])[:300]


def asr_source(name: str, *, allow_download: bool) -> str:
    """What WhisperModel loads for a hub `name`: its cached folder, pulled first if allowed."""
    folder = cached_path(name)
    if folder is not None:
        return str(folder)
    if not allow_download:
        raise ModelUnavailable(
            f"ASR model {name!r} is not in the local Hugging Face cache ({cache_dir()}): "
            f"run `ecg models pull {name}` first, or set ML_ALLOW_DOWNLOAD=true to pull it "
            "on first use"
        )
    return str(pull(name))


def require_cached(names: list[str], *, allow_download: bool) -> None:
    """ModelUnavailable naming `ecg models pull` for a hub name missing from the cache, unless
    it may be downloaded (then a worker pulls it when it loads it)."""
    if allow_download:
        return
    for name in names:
        if is_hub_name(name):
            asr_source(name, allow_download=False)


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def verify_snapshot(folder: Path) -> None:
    """Check every file of a cached snapshot against the hash its blob is named by.

    A mismatch deletes the file (blob and link), so the next pull fetches it again, and raises.
    """
    for link in sorted(folder.iterdir()):
        blob = link.resolve()
        if not blob.is_file():
            continue
        expected = blob.name
        actual = _file_hash(blob, expected)
        if actual is None or actual == expected:
            continue
        blob.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        raise ModelIntegrityError(
            f"{link.name} of {folder.parent.parent.name} does not match its published hash "
            f"({actual} != {expected}); deleted, nothing of it is used"
        )


def _file_hash(path: Path, expected: str) -> str | None:
    """sha256 (LFS files) or git blob sha1 (the others) of `path`, as the cache names it."""
    if _SHA256.fullmatch(expected):
        digest = hashlib.sha256()
    elif _SHA1.fullmatch(expected):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"blob {path.stat().st_size}\0".encode())
    else:
        return None  # not a cache blob (a copied folder): nothing to check against
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedModel:
    name: str  # the faster-whisper name when it has one, else the repo id
    repo: str
    size_bytes: int
    path: Path


def cached_models() -> list[CachedModel]:
    """Models in the local cache that faster-whisper can load (a snapshot with model.bin)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir()
    except CacheNotFound:
        return []
    names: dict[str, str] = {}
    for short, repo_id in faster_whisper_models().items():
        names.setdefault(repo_id, short)  # `large-v3` before its alias `large`
    found = []
    for cached in sorted(info.repos, key=lambda r: r.repo_id):
        if cached.repo_type != "model":
            continue
        for rev in cached.revisions:
            files = {f.file_name for f in rev.files}
            if "model.bin" in files and "config.json" in files:
                name = names.get(cached.repo_id, cached.repo_id)
                found.append(CachedModel(name, cached.repo_id, rev.size_on_disk, rev.snapshot_path))
                break
    return found


def _repo(name: str) -> str:
    repo = repo_for(name)
    if repo is None:
        known = ", ".join(faster_whisper_models())
        raise ModelUnavailable(
            f"{name!r} is not a faster-whisper model name ({known}) or a Hub repo id"
        )
    return repo
