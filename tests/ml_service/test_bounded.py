"""The memory-bounded drivers find the same speech and words as one pass over the whole file."""

from __future__ import annotations

import itertools

import pytest

from ml_server.models import get_models
from ml_server.pipeline import bounded, transcribe, vad
from ml_server.pipeline.data import SpeechRegion
from ml_server.pipeline.decode import decode
from tests.support import media


def _speech_s(regions: list[SpeechRegion]) -> float:
    return sum(r.end - r.start for r in regions)


def test_windowed_vad_finds_the_same_speech() -> None:
    audio = decode(media.dialogue("wav", long=True).path, max_duration_s=600)
    whole = vad.detect_speech(audio)
    # 7 s windows cut through the middle of many turns: the edges must be joined again.
    windowed = bounded.detect_speech(audio, window_s=7.0)
    assert _speech_s(windowed) == pytest.approx(_speech_s(whole), rel=0.05)
    assert abs(len(windowed) - len(whole)) <= len(whole) // 5 + 1
    assert all(a.end <= b.start for a, b in itertools.pairwise(windowed))


def test_regions_are_grouped_in_order_without_passing_the_bound() -> None:
    regions = [SpeechRegion(i * 10.0, i * 10.0 + 8.0) for i in range(20)]
    groups = bounded.group_regions(regions, max_s=30.0)
    assert [r for g in groups for r in g] == regions
    assert all(_speech_s(g) <= 30.0 for g in groups)
    assert bounded.group_regions([SpeechRegion(0, 100)], max_s=30.0) == [[SpeechRegion(0, 100)]]
    # A short tail joins the last group instead of costing a decode of its own.
    tail = [SpeechRegion(0, 28), SpeechRegion(30, 58), SpeechRegion(60, 65)]
    assert bounded.group_regions(tail, max_s=30.0) == [tail[:1], tail[1:]]


def test_grouped_transcription_keeps_the_words_in_media_time() -> None:
    clip = media.dialogue("wav", long=True)
    audio = decode(clip.path, max_duration_s=600)
    regions = vad.detect_speech(audio)
    models = get_models()
    opts = transcribe.TranscribeSettings()  # detect: the language is chosen once for all groups
    whole = transcribe.transcribe_speech(audio, regions, opts, models.asr_models())
    original = bounded.ASR_GROUP_S
    try:
        bounded.ASR_GROUP_S = 10.0  # many groups on a one-minute clip
        assert len(bounded.group_regions(regions)) > 3
        grouped = bounded.transcribe(audio, regions, opts, models.asr_models())
    finally:
        bounded.ASR_GROUP_S = original
    words = [w.word.strip().lower() for w in grouped.words]
    starts = [w.start for w in grouped.words]
    assert starts == sorted(starts) and starts[-1] <= audio.duration
    assert grouped.language == "en"
    expected = {w.word.strip().lower() for w in whole.words}
    assert len(set(words) & expected) >= 0.9 * len(expected)
