"""Which languages the configured ASR models can transcribe, known without loading them.

The API process answers `/process` and `/health` before (or without) loading any model, so the
answer comes from the model's name or its folder: Whisper's English-only models have a
51,864-token vocabulary, the multilingual ones 51,865 (51,866 for v3). A worker checks again
with the loaded model (`model.is_multilingual`) and fails the job `UNSUPPORTED_LANGUAGE` if the
two ever disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from ecg_protocol.languages import WHISPER_LANGUAGES, LanguageError, parse_languages
from ml_server.bundled import BUNDLED_PREFIX
from ml_server.config import MLSettings

ALL_LANGUAGES: tuple[str, ...] = tuple(WHISPER_LANGUAGES)
_MULTILINGUAL_VOCAB = 51_865


class UnsupportedLanguage(LanguageError):
    """A known language the loaded ASR model (or ML_LANGUAGES) does not allow."""


def _vocabulary_size(folder: Path) -> int | None:
    txt = folder / "vocabulary.txt"
    if txt.is_file():
        with txt.open(encoding="utf-8") as fh:
            return sum(1 for _ in fh)
    js = folder / "vocabulary.json"
    if js.is_file():
        return len(json.loads(js.read_text(encoding="utf-8")))
    return None


def model_languages(name: str) -> tuple[str, ...]:
    """Languages an ASR model named like `ML_ASR_MODEL` can transcribe."""
    if name.startswith(BUNDLED_PREFIX):
        return ("en",) if name.endswith(".en") else ALL_LANGUAGES
    folder = Path(name)
    if folder.is_dir():
        size = _vocabulary_size(folder)
        if size is not None:
            return ALL_LANGUAGES if size >= _MULTILINGUAL_VOCAB else ("en",)
    # A cached faster-whisper name: `*.en` and the distil-whisper models are English-only.
    base = folder.name.lower()
    return ("en",) if base.endswith(".en") or base.startswith("distil") else ALL_LANGUAGES


def supported_languages(settings: MLSettings, model: str | None = None) -> tuple[str, ...]:
    """What requests may ask for: the languages of the main model (or of `model`, a setting
    such as `small`), narrowed by ML_LANGUAGES."""
    known = model_languages(model or settings.ml_asr_model)
    allowed = settings.languages
    if allowed is None:
        return known
    return tuple(code for code in allowed if code in known)


def model_id(name: str) -> str:
    """How a request names an ASR model setting: a folder by its name, anything else as set."""
    return Path(name).name if Path(name).is_dir() else name


def held_models(settings: MLSettings) -> dict[str, str]:
    """The ASR models each worker holds, by the id a request names them with → their setting:
    the main model, the English one when it is loaded beside it, then ML_EXTRA_ASR_MODELS."""
    main = settings.ml_asr_model
    held = {model_id(main): main}
    english = settings.ml_asr_english_model.strip()
    # Loaded only in front of a multilingual main model (models.load_models).
    if english and english != main and model_languages(main) == ALL_LANGUAGES:
        held.setdefault(model_id(english), english)
    for extra in settings.extra_asr_models:
        held.setdefault(model_id(extra), extra)
    return held


def resolve_request(value: str | None, supported: tuple[str, ...]) -> tuple[str, ...]:
    """The languages a job may be transcribed in: one asked, several to detect among, or all.

    Raises LanguageError (an unknown code) or UnsupportedLanguage (known, not transcribable).
    """
    asked = parse_languages(value)
    if asked is None:
        if not supported:
            raise UnsupportedLanguage("ML_LANGUAGES allows no language the ASR model knows")
        return supported
    refused = [code for code in asked if code not in supported]
    if refused:
        shown = ", ".join(supported) if len(supported) <= 12 else f"{len(supported)} languages"
        raise UnsupportedLanguage(
            f"the ASR model on this server cannot transcribe {', '.join(refused)} "
            f"(supported: {shown}; see GET /languages)"
        )
    return asked
