"""The batched pipeline's clips: regions joined up to Whisper's 30 s window, never past it
(faster-whisper reads only the first 30 s of a clip and drops the rest); batching where the
speech fills two clips or more, sequential decoding below that."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ml_server.config import MLSettings
from ml_server.models import Models, load_models
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from ml_server.pipeline.transcribe import AsrModels, TranscribeSettings, group_seconds
from ml_server.pipeline.transcribe.groups import ASR_GROUP_S, BATCH_CLIP_S
from ml_server.pipeline.transcribe.reading import batch_clips
from tests.support.media import dialogue

RATE = 16_000


def _chunks(*seconds: float) -> list[dict[str, int]]:
    """Regions of these lengths, one second of silence apart in the media."""
    out, at = [], 0
    for s in seconds:
        out.append({"start": at, "end": at + int(s * RATE)})
        at += int((s + 1) * RATE)
    return out


def _lengths(clips: list[dict[str, float]]) -> list[float]:
    return [round(c["end"] - c["start"], 3) for c in clips]


def test_short_regions_are_joined_up_to_the_window() -> None:
    clips = batch_clips(_chunks(5, 5, 12, 10, 3), RATE)
    assert _lengths(clips) == [22.0, 13.0]
    # The clips tile the gathered speech, in order, with nothing left out.
    assert clips[0]["start"] == 0.0 and clips[-1]["end"] == 35.0
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(clips))


def test_no_clip_passes_the_window() -> None:
    # VAD caps a region at 30 s, but its padding can pass that: 30.4 s is cut in two halves.
    clips = batch_clips(_chunks(2, 30.4, 61, 1), RATE)
    assert max(_lengths(clips)) <= BATCH_CLIP_S
    assert _lengths(clips)[:3] == [2.0, 15.2, 15.2]
    assert [round(x, 1) for x in _lengths(clips)[3:]] == [20.3, 20.3, 20.3, 1.0]
    assert clips[-1]["end"] == 94.4


def test_no_speech_no_clip() -> None:
    assert batch_clips([], RATE) == []
    assert batch_clips([{"start": 5, "end": 5}], RATE) == []


def _spy_batched(models: Models, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Clip counts of each batched call the English model's batched pipeline gets."""
    pipeline = models.batched_asr_english
    assert pipeline is not None, "CPU batches by default (ML_CPU_BATCHED)"
    calls: list[int] = []
    real = pipeline.transcribe

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(kwargs["clip_timestamps"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "transcribe", spy)
    return calls


def test_cpu_batched_decoding_reads_the_dialogue(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the worker's models batch on CPU; the long dialogue (over 60 s of speech)
    goes through the batched pipeline, and its words come back in order, inside the media, as
    the sequential path reads them."""
    calls = _spy_batched(models, monkeypatch)
    media = dialogue("wav", long=True)
    result = run_pipeline(media.path, options=PipelineOptions(language="en"), models=models)
    assert calls and calls[0] >= 2, calls  # batched, several clips at once
    said = [w.word.strip(" .,!?").lower() for s in result.segments for w in s.words]
    expected = [w.strip(" .,!?").lower() for w in media.text.split()]
    assert len(set(said) & set(expected)) >= 0.9 * len(set(expected))
    starts = [w.start for s in result.segments for w in s.words]
    assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] <= media.duration


def test_speech_of_one_clip_is_read_sequentially(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The short dialogue (≈ 28 s) fits one clip: a batch of one would only lose the
    temperature fallback, so it is decoded sequentially."""
    calls = _spy_batched(models, monkeypatch)
    media = dialogue("wav")
    result = run_pipeline(media.path, options=PipelineOptions(language="en"), models=models)
    assert calls == []
    assert sum(len(s.words) for s in result.segments) >= 0.8 * len(media.text.split())


def test_sequential_setting_loads_no_batched_pipeline(ml_settings: MLSettings) -> None:
    """ML_CPU_BATCHED=false: sequential decoding everywhere on CPU."""
    models = load_models(ml_settings.model_copy(update={"ml_cpu_batched": False}))
    assert models.batched_asr is None and models.batched_asr_english is None
    asr = models.asr_models()
    assert group_seconds(TranscribeSettings(), asr) == ASR_GROUP_S


def test_batched_groups_hold_a_full_batch(models: Models) -> None:
    """Groups of a full batch of 30 s clips where decoding is batched (features are per clip,
    so memory stays bounded), ASR_GROUP_S otherwise."""
    settings = TranscribeSettings(batch_size=8)
    assert group_seconds(settings, models.asr_models()) == 8 * BATCH_CLIP_S
    sequential = AsrModels(main=models.asr, english=models.asr_english)
    assert group_seconds(settings, sequential) == ASR_GROUP_S
