"""Prosody stage: per-word loudness (RMS dBFS) and pitch (median F0 over voiced frames).

Pitch is tracked once for the whole signal with a vectorised YIN (numpy FFTs, 10 ms hop) and
each word takes the median over the voiced frames inside its span. Each frame is computed on
its own, so a track made earlier over the speech regions (the pipeline makes it beside
transcription) is completed with the frames of any word outside them and gives the same
values as one made after. Loudness is
20·log10(RMS) over the word's samples (a full-scale sine reads -3 dBFS), floored at
`MIN_DB` = -100 dB so it is always a number. A zero-length word is measured over a centred
`ZERO_LENGTH_WINDOW_S` window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from ml_server.pipeline.data import AsrWord, Audio, WordProsody, to_float
from ml_server.pipeline.level import listening_gain_db

MIN_DB = -100.0
ZERO_LENGTH_WINDOW_S = 0.05
HOP_S = 0.01

F64 = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class PitchSettings:
    fmin: float = 60.0
    fmax: float = 800.0
    threshold: float = 0.15  # YIN's CMNDF threshold: below it a frame is periodic
    # Frames quieter than this, as the listening stages hear the media, are not voiced:
    # media recorded far too quietly is raised for them (level.py), and its words, read
    # there, keep their pitch (YIN itself does not depend on the level).
    gate_db: float = -55.0
    window_s: float = 0.025  # YIN integration window
    block_frames: int = 1024  # frames per FFT batch: bounds memory on long media


@dataclass(frozen=True, slots=True)
class PitchTrack:
    """F0 per frame (NaN where unvoiced or not `computed`); frame i is centred at `times[i]`."""

    times: F64
    f0: F64
    computed: Flags


def _never() -> bool:
    return False


def track_pitch(
    audio: Audio,
    opts: PitchSettings | None = None,
    spans: Sequence[tuple[float, float]] = (),
    known: PitchTrack | None = None,
    stop: Callable[[], bool] = _never,
) -> PitchTrack:
    """YIN F0 track, NaN on unvoiced frames; only frames inside `spans` when given, and of
    those only the ones `known` (a track of the same audio) has not computed. `stop` is asked
    between blocks: a track stopped early marks only what it computed."""
    o = opts or PitchSettings()
    sr = audio.sample_rate
    x = audio.pcm  # int16; each block of frames is made float below
    hop = round(HOP_S * sr)
    tau_min = max(2, int(sr / o.fmax))
    tau_max = int(np.ceil(sr / o.fmin))
    w = max(round(o.window_s * sr), tau_max)
    length = w + tau_max + 1
    if x.shape[0] < length:
        x = np.pad(x, (0, length - x.shape[0]))
    n_frames = 1 + (x.shape[0] - length) // hop
    times = (np.arange(n_frames) * hop + w / 2) / sr
    f0 = np.full(n_frames, np.nan) if known is None else known.f0.copy()
    computed = np.zeros(n_frames, dtype=bool) if known is None else known.computed.copy()
    wanted = np.zeros(n_frames, dtype=bool) if spans else np.ones(n_frames, dtype=bool)
    for start, end in spans:
        lo, hi = np.searchsorted(times, [start, end])
        wanted[lo:hi] = True
    frame_idx = np.flatnonzero(wanted & ~computed)
    gate_db = o.gate_db - listening_gain_db(audio)
    # Lags stay below tau_max, so a circular correlation of this size never wraps.
    nfft = 1 << int(np.ceil(np.log2(length)))
    taus = np.arange(tau_max + 1)
    offsets = np.arange(length)
    for b in range(0, frame_idx.size, o.block_frames):
        if stop():
            break
        block = frame_idx[b : b + o.block_frames]
        fr = to_float(x[block[:, None] * hop + offsets[None, :]])
        # Window energies for every lag from a running sum over each frame: memory per block,
        # not per signal (a running sum over hours of audio is gigabytes of float64).
        energy = np.zeros((fr.shape[0], length + 1))
        np.cumsum(np.square(fr, dtype=np.float64), axis=1, out=energy[:, 1:])
        e_tau = energy[:, taus + w] - energy[:, taus]
        f0[block] = _yin_frames(fr, e_tau, w, tau_min, nfft, sr, o, gate_db)
        computed[block] = True
    return PitchTrack(times=times, f0=f0, computed=computed)


def _yin_frames(
    fr: npt.NDArray[np.float32],
    e_tau: F64,
    w: int,
    tau_min: int,
    nfft: int,
    sr: int,
    o: PitchSettings,
    gate_db: float,
) -> F64:
    """F0 of each frame (row) of `fr`, NaN where unvoiced; e_tau[:, t] = energy of x[t:t+w]."""
    tau_max = e_tau.shape[1] - 1
    taus = np.arange(tau_max + 1)
    # r(tau) = sum_j x[j] x[j+tau], j < w, by FFT cross-correlation.
    spec_a = sfft.rfft(fr[:, :w], nfft, axis=1)
    spec_b = sfft.rfft(fr, nfft, axis=1)
    r = sfft.irfft(np.conj(spec_a) * spec_b, nfft, axis=1)[:, : tau_max + 1]
    e0 = e_tau[:, :1]
    d = np.maximum(e0 + e_tau - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    cmndf = np.ones_like(d)
    cmndf[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    seg = cmndf[:, tau_min:tau_max]
    local_min = np.zeros_like(seg, dtype=bool)
    local_min[:, 1:-1] = (seg[:, 1:-1] <= seg[:, :-2]) & (seg[:, 1:-1] <= seg[:, 2:])
    # YIN: the first dip under the threshold, not the global minimum (avoids octave errors).
    cand = local_min & (seg < o.threshold)
    has = cand.any(axis=1)
    first = np.argmax(cand, axis=1)
    rows = np.arange(seg.shape[0])
    # Parabolic interpolation around the chosen lag for sub-sample precision.
    i = np.clip(first, 1, seg.shape[1] - 2)
    y0, y1, y2 = seg[rows, i - 1], seg[rows, i], seg[rows, i + 1]
    denom = y0 - 2 * y1 + y2
    safe = np.where(np.abs(denom) > 1e-12, denom, 1.0)
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / safe, 0.0)
    tau = tau_min + i + np.clip(shift, -1, 1)
    energy_db = 10 * np.log10(np.maximum(e0[:, 0] / w, 1e-20))
    voiced = has & (energy_db > gate_db)
    out: F64 = np.where(voiced, sr / tau, np.nan)
    return out


def volume_db(audio: Audio, start: float, end: float) -> float:
    """RMS level in dBFS over [start, end] (a centred short window when zero-length)."""
    start, end = _span(start, end)
    sr = audio.sample_rate
    a = max(0, int(start * sr))
    b = min(audio.size, max(a + 1, int(np.ceil(end * sr))))
    seg = audio.window(a, b).astype(np.float64)
    if seg.size == 0:
        return MIN_DB
    rms = float(np.sqrt(np.mean(seg**2)))
    return round(max(MIN_DB, 20 * math.log10(max(rms, 1e-12))), 2)


def word_pitch(track: PitchTrack, start: float, end: float) -> float | None:
    """Median F0 over the voiced frames in [start, end]; None when none is voiced."""
    start, end = _span(start, end)
    lo, hi = np.searchsorted(track.times, [start, end])
    f = track.f0[lo:hi]
    voiced = f[~np.isnan(f)]
    if voiced.size == 0:
        return None
    return round(float(np.median(voiced)), 2)


def measure_words(
    audio: Audio,
    words: list[AsrWord],
    opts: PitchSettings | None = None,
    known: PitchTrack | None = None,
) -> list[WordProsody]:
    """Loudness and pitch of each word; `known`: frames of the track already computed (with
    the same `opts`), the rest are computed here."""
    if not words:
        return []
    # Only frames under some word are tracked: silence between words costs nothing.
    track = track_pitch(audio, opts, spans=around([(w.start, w.end) for w in words]), known=known)
    return [
        WordProsody(
            volume_db=volume_db(audio, w.start, w.end), pitch_hz=word_pitch(track, w.start, w.end)
        )
        for w in words
    ]


def around(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(start, end) spans as measured, a hop wider on each side: the frames whose pitch they
    need."""
    return [(a - HOP_S, b + HOP_S) for a, b in (_span(start, end) for start, end in spans)]


def _span(start: float, end: float) -> tuple[float, float]:
    if end - start < ZERO_LENGTH_WINDOW_S:
        mid = (start + end) / 2
        return max(0.0, mid - ZERO_LENGTH_WINDOW_S / 2), mid + ZERO_LENGTH_WINDOW_S / 2
    return start, end
