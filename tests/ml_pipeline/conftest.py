"""Real models, loaded once per test session; pipeline results cached per media format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ecg_protocol import AnalysisResult
from ml_server.config import BUNDLED_ASR, MLSettings
from ml_server.models import Models, load_models
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from tests.support.media import Format, SpeechMedia, dialogue


@pytest.fixture(scope="session")
def ml_settings(tmp_path_factory: pytest.TempPathFactory) -> MLSettings:
    return MLSettings(
        ml_asr_model=BUNDLED_ASR,
        ml_device="cpu",
        ml_compute_type="default",
        ml_emotion_model=None,
        ecg_data_dir=tmp_path_factory.mktemp("ml-data"),
    )


@pytest.fixture(scope="session")
def models(ml_settings: MLSettings) -> Models:
    return load_models(ml_settings)


@pytest.fixture(scope="session")
def analysed(models: Models) -> Callable[[Format], tuple[SpeechMedia, AnalysisResult]]:
    """`analysed("mp4")` → (the dialogue media, its analysis), computed once per format."""
    cache: dict[str, tuple[SpeechMedia, AnalysisResult]] = {}

    def get(fmt: Format) -> tuple[SpeechMedia, AnalysisResult]:
        if fmt not in cache:
            media = dialogue(fmt)
            cache[fmt] = (media, run_pipeline(media.path, options=PipelineOptions(), models=models))
        return cache[fmt]

    return get


@pytest.fixture
def wav_path(tmp_path: Path) -> Path:
    return tmp_path / "signal.wav"
