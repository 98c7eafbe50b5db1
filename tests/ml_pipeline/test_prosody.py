"""Synthetic signals with a known answer: gain → dB, tones and glides → Hz."""

from __future__ import annotations

import numpy as np

from ml_server.pipeline.data import SAMPLE_RATE, AsrWord, Audio
from ml_server.pipeline.prosody import (
    MIN_DB,
    around,
    measure_words,
    track_pitch,
    volume_db,
    word_pitch,
)

SR = SAMPLE_RATE


def tone(freq: float, seconds: float = 1.0, amp: float = 0.3) -> Audio:
    t = np.arange(int(seconds * SR)) / SR
    return Audio((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32))


def test_six_db_gain_reads_six_db() -> None:
    rng = np.random.default_rng(1)
    base = (0.05 * rng.standard_normal(SR)).astype(np.float32)
    louder = Audio(base * np.float32(10 ** (6 / 20)))
    delta = volume_db(louder, 0.2, 0.7) - volume_db(Audio(base), 0.2, 0.7)
    assert abs(delta - 6) <= 1


def test_full_scale_sine_is_minus_three_dbfs() -> None:
    assert abs(volume_db(tone(440, amp=1.0), 0.1, 0.9) + 3.01) < 0.05


def test_silence_is_floored_and_unvoiced() -> None:
    audio = Audio(np.zeros(SR, dtype=np.float32))
    assert volume_db(audio, 0.1, 0.5) == MIN_DB
    [p] = measure_words(audio, [AsrWord(" hm", 0.1, 0.5, 0.9)])
    assert p.volume_db == MIN_DB and p.pitch_hz is None


def test_220_hz_tone() -> None:
    [p] = measure_words(tone(220), [AsrWord(" la", 0.2, 0.8, 0.9)])
    assert p.pitch_hz is not None and abs(p.pitch_hz - 220) <= 5


def test_low_and_high_tones() -> None:
    for f in (80.0, 110.0, 440.0, 600.0):
        pitch = word_pitch(track_pitch(tone(f)), 0.2, 0.8)
        assert pitch is not None and abs(pitch - f) <= 0.03 * f, (f, pitch)


def test_glide_is_followed() -> None:
    seconds = 2.0
    t = np.arange(int(seconds * SR)) / SR
    freq = 150 + 75 * t  # 150 → 300 Hz
    audio = Audio((0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR)).astype(np.float32))
    track = track_pitch(audio)
    for at in (0.25, 0.75, 1.25, 1.75):
        pitch = word_pitch(track, at - 0.05, at + 0.05)
        assert pitch is not None and abs(pitch - (150 + 75 * at)) <= 5, (at, pitch)
    words = [AsrWord(" a", 0.1, 0.5, 1.0), AsrWord(" b", 1.5, 1.9, 1.0)]
    first, second = measure_words(audio, words)
    assert first.pitch_hz is not None and second.pitch_hz is not None
    assert second.pitch_hz > first.pitch_hz + 60


def test_noise_is_unvoiced() -> None:
    rng = np.random.default_rng(2)
    audio = Audio((0.2 * rng.standard_normal(SR)).astype(np.float32))
    assert word_pitch(track_pitch(audio), 0.1, 0.9) is None


def test_zero_length_word_is_measured_around_its_time() -> None:
    audio = tone(220)
    [p] = measure_words(audio, [AsrWord(" a", 0.5, 0.5, 0.5)])
    assert p.pitch_hz is not None and abs(p.pitch_hz - 220) <= 5
    assert abs(p.volume_db - (20 * np.log10(0.3 / np.sqrt(2)))) < 0.5


def test_word_at_the_very_end_and_start() -> None:
    audio = tone(220, seconds=0.5)
    a, b = measure_words(audio, [AsrWord(" x", 0.0, 0.0, 1.0), AsrWord(" y", 0.5, 0.6, 1.0)])
    assert a.volume_db > MIN_DB
    assert isinstance(b.volume_db, float)


def test_a_track_made_earlier_over_regions_gives_the_same_words() -> None:
    """The pipeline tracks pitch over the speech regions beside transcription; words inside
    and outside them must read exactly as with a track made after, and a stopped track is
    completed, not trusted."""
    seconds = 3.0
    t = np.arange(int(seconds * SR)) / SR
    freq = 120 + 60 * t
    audio = Audio((0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR)).astype(np.float32))
    words = [
        AsrWord(" in", 0.2, 0.6, 1.0),
        AsrWord(" out", 2.1, 2.5, 1.0),
        AsrWord(" z", 1.0, 1.0, 1),
    ]
    after = measure_words(audio, words)
    regions = track_pitch(audio, spans=around([(0.0, 1.2)]))
    assert regions.computed.any() and not regions.computed.all()
    assert measure_words(audio, words, known=regions) == after
    stopped = track_pitch(audio, spans=around([(0.0, 1.2)]), stop=lambda: True)
    assert not stopped.computed.any()
    assert measure_words(audio, words, known=stopped) == after
    assert all(p.pitch_hz is not None for p in after)


def voice(f0: float, seconds: float = 1.0, amp: float = 0.1) -> np.ndarray:
    """A voiced vowel-like signal: f0 and its first harmonics, falling in strength."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    return (amp * wave / np.abs(wave).max()).astype(np.float32)


def test_media_recorded_far_too_quietly_keeps_its_pitch() -> None:
    """Media the listening stages raise (peak under level.QUIET_PEAK_DBFS) has its words read;
    their pitch is gated as the stages hear it, their loudness measured as it is."""
    quiet = voice(180, amp=10 ** (-60 / 20))  # peak -60 dBFS, each frame under the gate
    [p] = measure_words(Audio(quiet), [AsrWord(" a", 0.2, 0.8, 1.0)])
    assert p.pitch_hz is not None and abs(p.pitch_hz - 180) <= 5, p
    assert p.volume_db < -60, p


def test_near_silence_in_quiet_media_stays_unvoiced() -> None:
    rng = np.random.default_rng(3)
    hiss = (10 ** (-70 / 20) * rng.standard_normal(SR)).astype(np.float32)
    [p] = measure_words(Audio(hiss), [AsrWord(" a", 0.2, 0.8, 1.0)])
    assert p.pitch_hz is None
