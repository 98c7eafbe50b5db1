"""Speaker embeddings over 1.6 s windows sliding inside the speech, by a `SpeakerEncoder`:
resemblyzer's GE2E (bundled, the default) or an ONNX file with the WeSpeaker/3D-Speaker
contract (`ML_SPEAKER_MODEL`: 80-dim Kaldi fbank in, one embedding per item out).

Windows go through the encoder in batches (front end per batch, so memory stays bounded on long
media); the pipeline runs this part on a second thread while transcription runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import librosa
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from resemblyzer import VoiceEncoder
from resemblyzer.hparams import (
    mel_n_channels,
    mel_window_length,
    mel_window_step,
    model_embedding_size,
    partials_n_frames,
    sampling_rate,
)

from ecg_protocol import Stage
from ml_server.pipeline.data import PCM_SCALE, Audio, SpeechRegion, mean_square
from ml_server.pipeline.diarize.fbank import FBANK_BINS, WindowType, cmn, kaldi_fbank
from ml_server.pipeline.diarize.settings import DiarizeSettings
from ml_server.pipeline.errors import Cancelled

MEL_FPS = 100  # resemblyzer's mel hop is 10 ms
WINDOW_S = partials_n_frames / MEL_FPS  # 1.6 s: what the encoder was trained on
_TARGET_DBFS = -30.0  # resemblyzer normalises utterances to this loudness
# resemblyzer's mel front end (its wav_to_mel_spectrogram), applied per batch of windows.
_N_FFT = sampling_rate * mel_window_length // 1000
_HOP = sampling_rate * mel_window_step // 1000
WINDOW_SAMPLES = partials_n_frames * _HOP  # 1.6 s at 16 kHz

Embeddings = npt.NDArray[np.float32]
Pcm = npt.NDArray[np.int16]


class SpeakerEncoder(Protocol):
    """Embeds a batch of 1.6 s windows of one signal (16 kHz int16, shape (b, WINDOW_SAMPLES))."""

    @property
    def dim(self) -> int: ...

    def embed(self, windows: Pcm, signal_rms: float) -> Embeddings:
        """L2-normalised embeddings, (b, dim) float32; `signal_rms` is the whole signal's
        (full scale 1), for an encoder that levels loudness across the signal."""
        ...


class GE2EEncoder:
    """resemblyzer's GE2E: 40-bin mel (librosa) over the window, loudness levelled per signal."""

    def __init__(self, encoder: VoiceEncoder) -> None:
        self._encoder = encoder

    @classmethod
    def load(cls, device: str) -> GE2EEncoder:
        """resemblyzer's bundled weights on `device` (cuda or cpu)."""
        encoder = VoiceEncoder(device="cuda" if device == "cuda" else "cpu", verbose=False)
        encoder.eval()
        return cls(encoder)

    @property
    def dim(self) -> int:
        return int(model_embedding_size)

    def embed(self, windows: Pcm, signal_rms: float) -> Embeddings:
        """GE2E embeddings of the windows (resemblyzer normalises them to length 1)."""
        # resemblyzer normalises loudness before embedding; one gain for the whole signal keeps
        # windows comparable with each other.
        gain = np.float32(10 ** (_TARGET_DBFS / 20) / signal_rms if signal_rms > 1e-6 else 1.0)
        chunk = windows.astype(np.float32)
        chunk *= gain / np.float32(PCM_SCALE)
        mel = librosa.feature.melspectrogram(
            y=chunk, sr=sampling_rate, n_fft=_N_FFT, hop_length=_HOP, n_mels=mel_n_channels
        )  # (b, 40, frames)
        mels = np.ascontiguousarray(mel.transpose(0, 2, 1)[:, :partials_n_frames], np.float32)
        with torch.inference_mode():
            out = self._encoder(torch.from_numpy(mels).to(self._encoder.device))
        return np.asarray(out.cpu().numpy(), dtype=np.float32)


class SpeakerModelError(ValueError):
    """`ML_SPEAKER_MODEL` is missing or is not an encoder this pipeline can run."""


class OnnxSpeakerEncoder:
    """An ONNX speaker encoder with the WeSpeaker/3D-Speaker contract: input (batch, frames, 80)
    Kaldi fbank with CMN (`fbank.py`), output (batch, dim)."""

    def __init__(self, session: ort.InferenceSession, window: WindowType = "hamming") -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name
        self._window: WindowType = window
        self._dim = 0
        self._dim = self._probe()

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> OnnxSpeakerEncoder:
        """Open `path` and check its contract on one silent window; SpeakerModelError if not."""
        if not path.is_file():
            raise SpeakerModelError(f"ML_SPEAKER_MODEL={path}: no such file")
        options = ort.SessionOptions()
        # Workers are processes, one thread each (as torch.set_num_threads(1) in models.py).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise SpeakerModelError(
                f"ML_SPEAKER_MODEL={path}: not a loadable ONNX model ({exc})"
            ) from exc
        inputs = session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        # A symbolic or unknown axis is a str or None; only a fixed one can be wrong.
        if (
            shape is None
            or len(shape) != 3
            or (isinstance(shape[2], int) and shape[2] != FBANK_BINS)
        ):
            found = [(i.name, i.shape) for i in inputs]
            raise SpeakerModelError(
                f"ML_SPEAKER_MODEL={path}: expected one input (batch, frames, {FBANK_BINS}) "
                f"of fbank features, found {found}"
            )
        return cls(session)

    @property
    def dim(self) -> int:
        return self._dim

    def _probe(self) -> int:
        try:
            out = self._run(np.zeros((1, WINDOW_SAMPLES), dtype=np.int16))
        except Exception as exc:  # an onnxruntime failure on a well-formed window
            raise SpeakerModelError(f"speaker model failed on a 1.6 s window: {exc}") from exc
        if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1:
            raise SpeakerModelError(
                f"speaker model must give (batch, dim) embeddings; gave shape {out.shape}"
            )
        return int(out.shape[1])

    def _run(self, windows: Pcm) -> npt.NDArray[np.float32]:
        # WeSpeaker scales [-1, 1] audio by 2^15 before its fbank: the int16 values themselves.
        features = cmn(kaldi_fbank(windows.astype(np.float32), window=self._window))
        out = self._session.run([self._output], {self._input: features})[0]
        return np.asarray(out, dtype=np.float32)

    def embed(self, windows: Pcm, signal_rms: float) -> Embeddings:
        """Embeddings of the windows, scaled to length 1 (the fbank's CMN makes them gain-free)."""
        out = self._run(windows)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: Embeddings = (out / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
        return unit


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
    encoder: SpeakerEncoder,
    batch_size: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """L2-normalised speaker embedding of each window, shape (n, encoder.dim).

    Windows are cut and passed to the encoder per batch (not the whole signal at once), so
    memory stays bounded on hours of media. `should_stop` is polled between batches.
    """
    if not windows:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    samples = audio.pcm
    rms = float(np.sqrt(mean_square(audio)))  # blockwise: no float64 copy of hours of audio
    starts = np.array([round(w.start * audio.sample_rate) for w in windows])
    # Past the end reads as silence; indices are clipped instead of padding (copying) the audio.
    last = samples.shape[0] - 1
    out: list[Embeddings] = []
    for i in range(0, len(windows), batch_size):
        if should_stop is not None and should_stop():
            raise Cancelled(Stage.DIARIZE)
        idx = starts[i : i + batch_size, None] + np.arange(WINDOW_SAMPLES)[None, :]
        chunk = np.where(idx <= last, samples[np.minimum(idx, last)], np.int16(0))
        out.append(encoder.embed(chunk, rms))
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
    encoder: SpeakerEncoder,
    should_stop: Callable[[], bool] | None = None,
) -> SpeakerEmbeddings:
    """Embed sliding windows over the speech regions."""
    windows = speech_windows(regions, audio.duration, opts.step_s)
    embeddings = embed_windows(audio, windows, encoder, opts.batch_size, should_stop)
    return SpeakerEmbeddings(windows, embeddings, tuple(regions))


def speech_regions(speech: SpeakerEmbeddings) -> list[SpeechRegion]:
    """The speech regions the windows were cut from (the windows themselves if none were kept)."""
    return list(speech.regions) or [SpeechRegion(w.start, w.end) for w in speech.windows]
