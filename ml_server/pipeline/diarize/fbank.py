"""Kaldi-style log-mel filterbank, as WeSpeaker's and 3D-Speaker's ONNX encoders expect it.

A numpy port of `torchaudio.compliance.kaldi.fbank` (torchaudio is not a dependency here) with
the settings WeSpeaker's ONNX runtime uses (`wespeaker/bin/infer_onnx.py`): 16 kHz samples on
the int16 scale, 25 ms frames every 10 ms cut without padding (`snip_edges`), no dither, DC
offset removed per frame, pre-emphasis 0.97, a Hamming window (3D-Speaker uses Kaldi's default
"povey" window: `window="povey"`), zero-padded to 512 for the FFT, power spectrum, 80
triangular mel bins from 20 Hz to Nyquist, natural log floored at float32's epsilon; then the
mean over frames subtracted per utterance (CMN, no variance normalisation). Arithmetic is
float32 as in torchaudio; results agree with it to float32 rounding.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.fft

Features = npt.NDArray[np.float32]
WindowType = Literal["hamming", "povey"]

FBANK_BINS = 80  # what WeSpeaker's and 3D-Speaker's released encoders take
_PREEMPHASIS = 0.97
_LOW_FREQ = 20.0
_EPSILON = float(np.finfo(np.float32).eps)  # Kaldi's log floor


def _mel(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)


@functools.cache
def mel_banks(num_bins: int, padded: int, sample_rate: int) -> npt.NDArray[np.float32]:
    """Kaldi's triangular mel filters, shape (num_bins, padded // 2 + 1) (last column zero)."""
    fft_bin_width = sample_rate / padded
    mel_low = _mel(_LOW_FREQ)
    mel_high = _mel(0.5 * sample_rate)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float32)[:, None]
    left = mel_low + b * delta
    center = mel_low + (b + 1) * delta
    right = mel_low + (b + 2) * delta
    freqs = fft_bin_width * np.arange(padded // 2, dtype=np.float32)
    mel = 1127.0 * np.log(1.0 + freqs / 700.0)  # float32, as torchaudio's mel_scale
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(np.float32(0.0), np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


@functools.cache
def _window(size: int, kind: WindowType) -> npt.NDArray[np.float32]:
    n = np.arange(size, dtype=np.float64)
    if kind == "hamming":
        w = 0.54 - 0.46 * np.cos(2 * np.pi * n / (size - 1))
    else:  # povey: a Hann window to the power 0.85
        w = (0.5 - 0.5 * np.cos(2 * np.pi * n / (size - 1))) ** 0.85
    return w.astype(np.float32)


def kaldi_fbank(
    waveforms: npt.NDArray[np.float32],
    sample_rate: int = 16_000,
    num_mel_bins: int = FBANK_BINS,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window: WindowType = "hamming",
) -> Features:
    """Log-mel fbank of each row of `waveforms` (b, samples; int16 scale): (b, frames, bins)."""
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    padded = 1 << (size - 1).bit_length()
    n_frames = 1 + (waveforms.shape[-1] - size) // shift if waveforms.shape[-1] >= size else 0
    idx = np.arange(n_frames)[:, None] * shift + np.arange(size)[None, :]
    frames = waveforms.astype(np.float32, copy=False)[:, idx]  # (b, frames, size)
    frames = frames - frames.mean(axis=-1, keepdims=True, dtype=np.float32)
    previous = np.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
    frames = (frames - np.float32(_PREEMPHASIS) * previous) * _window(size, window)
    spectrum = scipy.fft.rfft(frames, n=padded, axis=-1)  # float32 in, complex64 out
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    energies = power @ mel_banks(num_mel_bins, padded, sample_rate).T
    logs: Features = np.log(np.maximum(energies, np.float32(_EPSILON))).astype(np.float32)
    return logs


def cmn(features: Features) -> Features:
    """Subtract each utterance's mean over frames (the features' axis -2)."""
    centred: Features = features - features.mean(axis=-2, keepdims=True, dtype=np.float32)
    return centred.astype(np.float32)
