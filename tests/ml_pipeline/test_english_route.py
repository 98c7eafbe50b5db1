"""English goes to the small English model, and to the main one too where it falters
(transcribe._in_language).

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
from ml_server.pipeline.data import AsrSegment, AsrWord
from tests.support.media import dialogue

AMI = Path(__file__).resolve().parents[1] / "data" / "ami"
GREEDY = transcribe.TranscribeSettings(temperatures=(0.0,))
ENGLISH = transcribe.TranscribeSettings(languages=("en",), temperatures=(0.0,))


def _readings(
    path: Path, models: Models
) -> tuple[transcribe.Segments, transcribe.Segments, transcribe.Segments]:
    """(tiny.en's reading, base's reading, what the English route returns) of `path`."""
    asr = models.asr_models()
    assert asr.english is not None
    audio = decode.decode(path, max_duration_s=600)
    regions = bounded.detect_speech(audio)
    fast = transcribe.transcribe(audio, regions, ENGLISH, asr.english).segments
    careful = transcribe.transcribe(audio, regions, ENGLISH, asr.main).segments
    routed = transcribe._in_language(audio, regions, GREEDY, asr, "en")
    return fast, careful, routed


def test_clean_english_stays_with_the_english_model(models: Models) -> None:
    fast, _, routed = _readings(dialogue("wav").path, models)
    assert fast and all(seg.confident for seg in fast)
    assert routed == fast


def test_far_field_speech_the_english_model_falters_on_is_read_by_the_main_one(
    models: Models,
) -> None:
    handed_over = 0
    for clip in ("trn08", "tst01"):
        fast, careful, routed = _readings(AMI / f"{clip}.wav", models)
        if all(seg.confident for seg in fast):
            assert routed == fast, clip
            continue
        handed_over += 1
        assert routed == transcribe.surer(fast, careful), clip
        assert transcribe.confident_words(routed) >= transcribe.confident_words(fast), clip
    # Measured on one CPU (AMD EPYC with AVX-512, 2026-12-02): tiny.en fails the test on one
    # of trn08's six segments and on tst01's only one; two clips, so that one CPU's int8
    # arithmetic passing one of them cannot make this vacuous.
    assert handed_over >= 1


def _segment(words: int, confident: bool) -> AsrSegment:
    said = tuple(AsrWord(word=" w", start=i, end=i + 0.5, probability=0.5) for i in range(words))
    return AsrSegment(0.0, float(words), "w", said, greedy=confident, confident=confident)


def test_the_surer_reading_is_kept() -> None:
    fast = (_segment(5, True), _segment(4, False))
    assert transcribe.surer(fast, (_segment(6, True),)) == (_segment(6, True),)
    # A tie goes to the main model's reading: its words are the better guess.
    assert transcribe.surer(fast, (_segment(5, True), _segment(9, False))) != fast
    # A main reading with fewer confident words loses (a sampled loop, say).
    assert transcribe.surer(fast, (_segment(3, True), _segment(20, False))) == fast
