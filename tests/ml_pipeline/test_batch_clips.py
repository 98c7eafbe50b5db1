"""The batched pipeline's clips: regions joined up to Whisper's 30 s window, never past it
(faster-whisper reads only the first 30 s of a clip and drops the rest)."""

from __future__ import annotations

import itertools

from ml_server.config import MLSettings
from ml_server.models import load_models
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from ml_server.pipeline.transcribe.reading import BATCH_CLIP_S, batch_clips
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


def test_cpu_batched_decoding_reads_the_dialogue(ml_settings: MLSettings) -> None:
    """ML_CPU_BATCHED=true: the worker's models batch on CPU, and the dialogue's words come
    back in order, inside the media, as the sequential path reads them."""
    models = load_models(ml_settings.model_copy(update={"ml_cpu_batched": True}))
    assert models.batched_asr is not None and models.batched_asr_english is not None
    media = dialogue("wav", long=True)
    result = run_pipeline(media.path, options=PipelineOptions(language="en"), models=models)
    said = [w.word.strip(" .,!?").lower() for s in result.segments for w in s.words]
    expected = [w.strip(" .,!?").lower() for w in media.text.split()]
    assert len(set(said) & set(expected)) >= 0.9 * len(set(expected))
    starts = [w.start for s in result.segments for w in s.words]
    assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] <= media.duration
