"""English goes to the small English model, and to the main one too where it falters
(transcribe.in_language).

tiny.en reads clean English as well as base at a third of the cost, but on far-field meeting
speech its decodes fail Whisper's own test (log-prob under -1 at the first temperature) where
base's pass. Such a reading is not the end: the main model reads the same regions, and the
reading with more confidently read words is kept. Greedy decoding only here, so that both
readings are the same whatever ran before in this process (docs/pipeline.md, "Seeded sampling").
"""

from __future__ import annotations

from pathlib import Path

from ml_server.models import Models
from ml_server.pipeline import bounded, decode, transcribe
from ml_server.pipeline.data import AsrSegment, AsrWord, SpeechRegion
from tests.support.media import dialogue

AMI = Path(__file__).resolve().parents[1] / "data" / "ami"
AUDIOEVAL = Path(__file__).resolve().parents[1] / "data" / "audioeval"
GREEDY = transcribe.TranscribeSettings(temperatures=(0.0,))
ENGLISH = transcribe.TranscribeSettings(languages=("en",), temperatures=(0.0,))


def _readings(
    path: Path, models: Models
) -> tuple[transcribe.Segments, list[SpeechRegion], transcribe.Segments, transcribe.Segments]:
    """(tiny.en's reading, the regions where it faltered, base's reading of those, what the
    English route returns) of `path`."""
    asr = models.asr_models()
    assert asr.english is not None
    audio = decode.decode(path, max_duration_s=600)
    regions = bounded.detect_speech(audio)
    fast = transcribe.read(audio, regions, ENGLISH, asr.english).segments
    faltered = transcribe.faltering(regions, fast)
    careful = transcribe.read(audio, faltered, ENGLISH, asr.main).segments if faltered else ()
    routed = transcribe.in_language(audio, regions, GREEDY, asr, "en")
    return fast, faltered, careful, routed


def test_clean_english_stays_with_the_english_model(models: Models) -> None:
    fast, faltered, _, routed = _readings(dialogue("wav").path, models)
    assert fast and all(seg.confident for seg in fast) and not faltered
    assert routed == fast


# Speech tiny.en cannot read, asked as English. Its decodes fail Whisper's test on most CPUs,
# but not on all: average log-probability against the -1.0 rule, Japanese -1.55 / -1.54 and
# Chinese -1.82 / -2.04 on an AMD EPYC with AVX-512 (CT2_USE_MKL=0 / =1), while on a first-
# generation EPYC (AVX2 only) Chinese reads as "Thank you very much for watching." at -0.98,
# Whisper's stock hallucination, passing the rule, and Japanese fails it at -1.58 (sampled).
# So the hand-over is asserted for at least one of the two. Far-field meeting speech (trn08:
# -0.49 with one failing segment, tst01: -0.74 / -1.02) and reversed speech sit near the rule
# or read as loops that are dropped: checked for the route's invariant only.
CLEARLY_UNREAD = (AUDIOEVAL / "ja" / "pangrama.flac", AUDIOEVAL / "zh" / "pangrama.flac")


def test_speech_the_english_model_falters_on_is_read_by_the_main_one(models: Models) -> None:
    handed_over = []
    for path in (AMI / "trn08.wav", AMI / "tst01.wav", *CLEARLY_UNREAD):
        fast, faltered, careful, routed = _readings(path, models)
        if not faltered:
            assert all(seg.confident for seg in fast) and routed == fast, path.name
            continue
        handed_over.append(path)
        # Only the regions where tiny.en faltered are read again, each kept from the surer.
        assert routed == transcribe.surer_by_region(fast, careful, faltered), path.name
        assert transcribe.confident_words(routed) >= transcribe.confident_words(fast), path.name
        for region in faltered:
            kept = [w for seg in routed for w in seg.words if region.start <= w.start < region.end]
            base = [w for seg in careful for w in seg.words if region.start <= w.start < region.end]
            assert not base or kept, (path.name, region)
    assert set(CLEARLY_UNREAD) & set(handed_over), handed_over


def _segment(words: int, confident: bool, at: float = 0.0) -> AsrSegment:
    said = tuple(
        AsrWord(word=" w", start=at + i, end=at + i + 0.5, probability=0.5) for i in range(words)
    )
    return AsrSegment(at, at + words, "w", said, greedy=confident, confident=confident)


def _count(segments: transcribe.Segments, region: SpeechRegion) -> tuple[int, bool]:
    """(words in `region`, whether they are all confident)."""
    inside = [
        seg.confident for seg in segments for w in seg.words if region.start <= w.start < region.end
    ]
    return len(inside), all(inside)


def test_each_faltering_region_keeps_the_surer_reading() -> None:
    a, b, c = SpeechRegion(0, 10), SpeechRegion(20, 30), SpeechRegion(40, 50)
    fast = (_segment(5, True, 0), _segment(4, False, 20), _segment(6, True, 40))
    # Only b and c were read again (a was read confidently): b by more confident words, c by
    # fewer (a sampled loop, say).
    careful = (_segment(6, True, 20), _segment(3, True, 40), _segment(9, False, 45))
    routed = transcribe.surer_by_region(fast, careful, [b, c])
    assert _count(routed, a) == (5, True)  # never read again
    assert _count(routed, b) == (6, True)  # the main model's reading won
    assert _count(routed, c) == (6, True)  # tiny.en's reading stayed
    starts = [w.start for seg in routed for w in seg.words]
    assert starts == sorted(starts)
    # A tie goes to the main model's reading: its words are the better guess.
    tie = transcribe.surer_by_region(fast, (_segment(6, True, 40),), [c])
    assert [w.start for seg in tie for w in seg.words][-6:] == [40, 41, 42, 43, 44, 45]
    assert tie[-1] == _segment(6, True, 40)


def test_only_regions_a_failed_segment_overlaps_falter() -> None:
    regions = [SpeechRegion(0, 10), SpeechRegion(20, 30), SpeechRegion(40, 50)]
    fast = (_segment(5, True, 0), _segment(4, False, 20), _segment(6, True, 40))
    assert transcribe.faltering(regions, fast) == [regions[1]]
    assert transcribe.faltering(regions, fast[:1]) == []
