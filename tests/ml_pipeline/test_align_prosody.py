"""Prosody follows the aligned spans: touching loud and quiet words each keep their own values."""

from __future__ import annotations

import numpy as np

from ml_server.pipeline import align, prosody
from ml_server.pipeline.data import SAMPLE_RATE, AsrSegment, AsrWord, Audio, Transcript

QUIET = (0.30, 0.60, 0.03, 120.0)  # start, end, amplitude, Hz
LOUD = (0.60, 0.90, 0.50, 200.0)  # starts where the quiet word ends: they touch


def _two_words() -> Audio:
    x = np.zeros(round(1.4 * SAMPLE_RATE), np.float32)
    for start, end, amp, hz in (QUIET, LOUD):
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        t = np.arange(b - a) / SAMPLE_RATE
        x[a:b] = amp * np.sin(2 * np.pi * hz * t)
    return Audio(x)


def _sine_db(amp: float) -> float:
    return 20 * float(np.log10(amp / np.sqrt(2)))


def _whisper_like() -> Transcript:
    # Whisper's starts and ends run ≈ 100 ms late in running speech (bench/bench_alignment.py).
    words = (AsrWord(" soft", 0.40, 0.70, 0.9), AsrWord(" LOUD", 0.70, 1.00, 0.9))
    return Transcript("en", 1.0, (AsrSegment(0.40, 1.00, "soft LOUD", words),))


def test_a_loud_word_touching_a_quiet_one_gets_the_louder_value() -> None:
    audio = _two_words()
    aligned = align.align_words(audio, _whisper_like()).transcript.words
    quiet, loud = prosody.measure_words(audio, aligned)
    assert abs(quiet.volume_db - _sine_db(QUIET[2])) <= 1.0
    assert abs(loud.volume_db - _sine_db(LOUD[2])) <= 1.0
    assert loud.volume_db > quiet.volume_db + 20
    assert quiet.pitch_hz is not None and abs(quiet.pitch_hz - QUIET[3]) <= 0.03 * QUIET[3]
    assert loud.pitch_hz is not None and abs(loud.pitch_hz - LOUD[3]) <= 0.03 * LOUD[3]


def test_whisper_spans_would_give_the_quiet_word_its_neighbours_loudness() -> None:
    # The contrast that makes the test above mean something: unaligned, the quiet word's span
    # covers 100 ms of the loud one and reads far louder than it is.
    audio = _two_words()
    quiet, _ = prosody.measure_words(audio, _whisper_like().words)
    assert quiet.volume_db > _sine_db(QUIET[2]) + 10
