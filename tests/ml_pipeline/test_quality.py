"""End to end on real speech: two espeak-ng voices in mp4, webm and wav, real models."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from ecg_protocol import AnalysisResult, Word
from tests.support.media import Format, SpeechMedia
from tests.support.transcripts import word_error_rate as wer

FORMATS: list[Format] = ["mp4", "webm", "wav"]
Analysed = Callable[[Format], tuple[SpeechMedia, AnalysisResult]]


def test_wer_function() -> None:
    assert wer("a b c d", "a b c d") == 0
    assert wer("a b c d", "a x c") == 0.5
    assert wer("Hello, world!", "hello world") == 0


def all_words(result: AnalysisResult) -> list[Word]:
    return [w for s in result.segments for w in s.words]


@pytest.mark.parametrize("fmt", FORMATS)
def test_transcript_matches_known_text(analysed: Analysed, fmt: Format) -> None:
    media, result = analysed(fmt)
    hypothesis = " ".join(s.text for s in result.segments)
    assert wer(media.text, hypothesis) <= 0.15, hypothesis
    assert result.metadata.language == "en"
    # Detected by the multilingual model (then transcribed by tiny.en), not asked.
    assert 0.5 < (result.metadata.language_probability or 0.0) <= 1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_speakers_and_words_attributed(analysed: Analysed, fmt: Format) -> None:
    media, result = analysed(fmt)
    assert result.metadata.unique_speakers == 2
    words = all_words(result)
    truth = [media.nearest_speaker((w.start + w.end) / 2) for w in words]
    # Map each cluster to the true speaker most of its words belong to.
    mapping = {
        sid: Counter(
            t for w, t in zip(words, truth, strict=True) if w.speaker_id == sid
        ).most_common(1)[0][0]
        for sid in {w.speaker_id for w in words}
    }
    assert len(set(mapping.values())) == 2
    right = sum(mapping[w.speaker_id] == t for w, t in zip(words, truth, strict=True))
    assert right / len(words) >= 0.9
    # Ids are ordered by first appearance.
    assert result.segments[0].speaker.speaker_id == "SPEAKER_00"
    assert {s.speaker.speaker_id for s in result.segments} == {"SPEAKER_00", "SPEAKER_01"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_word_times_monotonic_and_inside_segments(analysed: Analysed, fmt: Format) -> None:
    media, result = analysed(fmt)
    previous_end = 0.0
    previous_segment_end = 0.0
    for seg in result.segments:
        assert seg.start >= previous_segment_end
        previous_segment_end = seg.end
        assert seg.words and seg.start <= seg.end
        for w in seg.words:
            assert previous_end <= w.start <= w.end
            assert seg.start <= w.start and w.end <= seg.end
            assert w.speaker_id == seg.speaker.speaker_id
            previous_end = w.end
    assert previous_end <= media.duration + 0.1


def test_result_schema_complete(analysed: Analysed) -> None:
    media, result = analysed("mp4")
    wire = result.to_wire()
    assert wire["schema_version"] == "1"
    meta = wire["metadata"]
    assert meta["filename"] == media.path.name
    assert abs(meta["duration"] - media.duration) < 0.1
    assert meta["total_segments"] == len(wire["segments"]) > 0
    assert set(meta["models"]) >= {"asr", "vad", "speaker_encoder", "emotion"}
    assert meta["word_timing"] == "energy+spectral refinement"  # English: aligned
    assert set(meta["processing_time"]) == {
        "decode",
        "vad",
        "transcribe",
        "align",
        "diarize",
        "prosody",
        "emotion",
        "finalize",
    }
    keys = {"word", "start", "end", "speaker_id", "volume_db", "pitch_hz", "probability"}
    for seg in wire["segments"]:
        assert {"start_time", "end_time", "speaker", "text", "words", "emotion"} <= set(seg)
        assert 0.0 <= seg["speaker"]["confidence"] <= 1.0
        emotion = seg["emotion"]
        assert emotion["label"] in emotion["scores"]
        assert abs(sum(emotion["scores"].values()) - 1) < 0.01
        for w in seg["words"]:
            assert set(w) == keys
            assert isinstance(w["volume_db"], float) and -100 <= w["volume_db"] <= 0
            assert w["pitch_hz"] is None or 50 <= w["pitch_hz"] <= 800
            assert 0 <= w["probability"] <= 1
    voiced = [w["pitch_hz"] for s in wire["segments"] for w in s["words"] if w["pitch_hz"]]
    assert len(voiced) >= 0.8 * sum(len(s["words"]) for s in wire["segments"])


def test_speakers_have_different_pitch(analysed: Analysed) -> None:
    # Voice A is low (espeak -p 25), voice B high (-p 80): per-word pitch must show it.
    _, result = analysed("wav")
    by_speaker: dict[str, list[float]] = {}
    for w in all_words(result):
        if w.pitch_hz is not None and w.speaker_id is not None:
            by_speaker.setdefault(w.speaker_id, []).append(w.pitch_hz)
    medians = sorted(sorted(v)[len(v) // 2] for v in by_speaker.values())
    assert medians[1] > 1.3 * medians[0]
