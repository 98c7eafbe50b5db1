"""Speaker embeddings: GE2E (resemblyzer) over 1.6 s windows sliding inside the speech.

Windows go through the encoder in batches (mel front end per batch, so memory stays bounded
on long media); the pipeline runs this part on a second thread while transcription runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt
import torch
from resemblyzer import VoiceEncoder
from resemblyzer.hparams import (
    mel_n_channels,
    mel_window_length,
    mel_window_step,
    partials_n_frames,
    sampling_rate,
)

from ecg_protocol import Stage
from ml_server.pipeline.data import PCM_SCALE, Audio, SpeechRegion, mean_square
from ml_server.pipeline.diarize.settings import DiarizeSettings
from ml_server.pipeline.errors import Cancelled

MEL_FPS = 100  # resemblyzer's mel hop is 10 ms
WINDOW_S = partials_n_frames / MEL_FPS  # 1.6 s: what the encoder was trained on
_TARGET_DBFS = -30.0  # resemblyzer normalises utterances to this loudness
# resemblyzer's mel front end (its wav_to_mel_spectrogram), applied per batch of windows.
_N_FFT = sampling_rate * mel_window_length // 1000
_HOP = sampling_rate * mel_window_step // 1000

Embeddings = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float


def speech_windows(regions: list[SpeechRegion], duration: float, step_s: float) -> list[Window]:
    """1.6 s windows every `step_s` inside each region (one centred window for a short one)."""
    out: list[Window] = []
    for r in regions:
        length = r.end - r.start
        if length <= WINDOW_S:
            mid = (r.start + r.end) / 2
            start = min(max(0.0, mid - WINDOW_S / 2), max(0.0, duration - WINDOW_S))
            out.append(Window(start, start + WINDOW_S))
            continue
        starts = np.arange(r.start, r.end - WINDOW_S + 1e-6, step_s)
        if r.end - WINDOW_S - starts[-1] > step_s / 2:
            starts = np.append(starts, r.end - WINDOW_S)
        out.extend(Window(float(s), float(s) + WINDOW_S) for s in starts)
    return out


def embed_windows(
    audio: Audio,
    windows: list[Window],
    encoder: VoiceEncoder,
    batch_size: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """L2-normalised speaker embedding of each window, shape (n, 256).

    Mel spectrograms are computed per batch of windows (not for the whole signal at once), so
    memory stays bounded on hours of media. `should_stop` is polled between batches.
    """
    if not windows:
        return np.zeros((0, 256), dtype=np.float32)
    samples = audio.pcm  # int16: each batch of windows is made float below
    rms = float(np.sqrt(mean_square(audio)))  # blockwise: no float64 copy of hours of audio
    # resemblyzer normalises loudness before embedding; one gain for the whole signal keeps
    # windows comparable with each other.
    gain = np.float32(10 ** (_TARGET_DBFS / 20) / rms if rms > 1e-6 else 1.0)
    pcm_gain = gain / np.float32(PCM_SCALE)
    span = partials_n_frames * _HOP
    starts = np.array([round(w.start * audio.sample_rate) for w in windows])
    # Past the end reads as silence; indices are clipped instead of padding (copying) the audio.
    last = samples.shape[0] - 1
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(Stage.DIARIZE)
            idx = starts[i : i + batch_size, None] + np.arange(span)[None, :]
            chunk = np.where(idx <= last, samples[np.minimum(idx, last)], 0).astype(np.float32)
            chunk *= pcm_gain
            mel = librosa.feature.melspectrogram(
                y=chunk, sr=audio.sample_rate, n_fft=_N_FFT, hop_length=_HOP, n_mels=mel_n_channels
            )  # (b, 40, frames)
            mels = np.ascontiguousarray(mel.transpose(0, 2, 1)[:, :partials_n_frames], np.float32)
            out.append(encoder(torch.from_numpy(mels).to(encoder.device)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SpeakerEmbeddings:
    """Windows inside speech and their embeddings (the part that needs no transcript)."""

    windows: list[Window]
    embeddings: Embeddings
    regions: tuple[SpeechRegion, ...] = ()


def embed_speech(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: DiarizeSettings,
    encoder: VoiceEncoder,
    should_stop: Callable[[], bool] | None = None,
) -> SpeakerEmbeddings:
    """Embed sliding windows over the speech regions."""
    windows = speech_windows(regions, audio.duration, opts.step_s)
    embeddings = embed_windows(audio, windows, encoder, opts.batch_size, should_stop)
    return SpeakerEmbeddings(windows, embeddings, tuple(regions))


def speech_regions(speech: SpeakerEmbeddings) -> list[SpeechRegion]:
    """The speech regions the windows were cut from (the windows themselves if none were kept)."""
    return list(speech.regions) or [SpeechRegion(w.start, w.end) for w in speech.windows]
