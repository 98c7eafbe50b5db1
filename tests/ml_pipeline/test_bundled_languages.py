"""The bundled multilingual model is joined once and only when its hash matches; which
languages a configured model offers is known without loading it; bad settings fail at start."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml_server import bundled
from ml_server.config import MLSettings
from ml_server.languages import ALL_LANGUAGES, model_languages, supported_languages


def test_base_is_joined_once_and_matches_the_published_hash(tmp_path: Path) -> None:
    folder = bundled.bundled_path("bundled:base", tmp_path)
    model = folder / "model.bin"
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert digest == bundled.BASE_SHA256
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    stamp = model.stat().st_mtime_ns
    assert bundled.bundled_path("bundled:base", tmp_path) == folder
    assert model.stat().st_mtime_ns == stamp  # not joined again


def test_a_hash_mismatch_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundled, "BASE_SHA256", "0" * 64)
    with pytest.raises(bundled.BundledModelError, match="sha256"):
        bundled.bundled_path("bundled:base", tmp_path)
    assert not any((tmp_path / "models" / "whisper-base").glob("*model.bin*"))


def test_unknown_bundled_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(bundled.BundledModelError, match="small"):
        bundled.bundled_path("bundled:small", tmp_path)


def test_languages_are_known_without_loading(tmp_path: Path) -> None:
    assert model_languages("bundled:base") == ALL_LANGUAGES
    assert model_languages("bundled:tiny.en") == ("en",)
    assert model_languages("small.en") == ("en",) and model_languages("large-v3") == ALL_LANGUAGES
    # A folder is judged by its vocabulary: multilingual Whisper has 51,865 tokens.
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "vocabulary.txt").write_text("t\n" * 51_864)
    assert model_languages(str(folder)) == ("en",)
    joined = bundled.bundled_path("bundled:base", tmp_path)
    assert model_languages(str(joined)) == ALL_LANGUAGES


def test_ml_languages_narrows_in_its_own_order() -> None:
    assert supported_languages(MLSettings(ml_languages="KO, en")) == ("ko", "en")
    english_only = MLSettings(ml_asr_model="bundled:tiny.en", ml_languages="ko,en")
    assert supported_languages(english_only) == ("en",)


@pytest.mark.parametrize(
    "settings",
    [{"ml_languages": "ko,xx"}, {"ml_asr_temperatures": "0,1.5"}, {"ml_asr_temperatures": ""}],
)
def test_bad_language_settings_fail_at_start(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        MLSettings(**settings)  # type: ignore[arg-type]
