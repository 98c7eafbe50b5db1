"""A pluggable speaker encoder (ML_SPEAKER_MODEL): an ONNX file with the WeSpeaker/3D-Speaker
contract, here a tiny one the test exports itself, and the Kaldi fbank it is fed.

The tiny encoder is a fixed random projection of the fbank averaged over frames: no speaker
model. These tests check the plumbing (loading, shapes, normalisation, a whole analysis), not
diarization quality, which no test here measures for any encoder but GE2E.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ml_server.config import MLSettings
from ml_server.models import load_models
from ml_server.pipeline.data import AsrWord, SpeechRegion
from ml_server.pipeline.decode import decode
from ml_server.pipeline.diarize import (
    DiarizeSettings,
    OnnxSpeakerEncoder,
    SpeakerModelError,
    diarize,
    embed_windows,
    speech_windows,
)
from ml_server.pipeline.diarize.fbank import FBANK_BINS, cmn, kaldi_fbank, mel_banks
from ml_server.pipeline.vad import detect_speech
from tests.support.media import SpeechMedia, dialogue

DIM = 48  # anything but GE2E's 256: nothing downstream may assume it


class _MeanProjection(torch.nn.Module):
    """(batch, frames, in_dim) → (batch, out_dim): a fixed random projection, averaged."""

    def __init__(self, in_dim: int = FBANK_BINS, out_dim: int = DIM) -> None:
        super().__init__()
        weight = torch.randn(in_dim, out_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("weight", weight)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats @ self.weight).mean(dim=1)


def _export(path: Path, module: torch.nn.Module, in_dim: int = FBANK_BINS) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            module.eval(),
            (torch.randn(2, 158, in_dim),),
            str(path),
            input_names=["feats"],
            output_names=["embs"],
            dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embs": {0: "batch"}},
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("speaker") / "tiny.onnx", _MeanProjection())


def test_fbank_of_a_sine_peaks_at_its_frequency() -> None:
    t = np.arange(16_000) / 16_000
    sine = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[None]
    feats = kaldi_fbank(sine)
    assert feats.shape == (1, 1 + (16_000 - 400) // 160, FBANK_BINS)
    assert feats.dtype == np.float32
    # The loudest bin is the one whose triangle weighs the FFT bin of 1 kHz most.
    fft_bin = round(1000 / (16_000 / 512))
    assert int(np.argmax(feats[0].mean(axis=0))) == int(
        np.argmax(mel_banks(80, 512, 16_000)[:, fft_bin])
    )
    assert np.allclose(cmn(feats).mean(axis=1), 0.0, atol=1e-4)


def test_onnx_encoder_embeds_windows(tiny_onnx: Path) -> None:
    encoder = OnnxSpeakerEncoder.load(tiny_onnx)
    assert encoder.dim == DIM
    audio = decode(dialogue("wav").path, max_duration_s=600)
    windows = speech_windows(detect_speech(audio), audio.duration, 0.8)
    emb = embed_windows(audio, windows, encoder, batch_size=16)  # several batches
    assert emb.shape == (len(windows), DIM) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert embed_windows(audio, [], encoder).shape == (0, DIM)


def _turn_words(media: SpeechMedia) -> list[AsrWord]:
    """The script's words spread evenly over each turn (as an ASR would place them)."""
    words: list[AsrWord] = []
    for turn in media.turns:
        tokens = turn.text.split()
        step = (turn.end - turn.start) / len(tokens)
        for i, token in enumerate(tokens):
            start = turn.start + i * step
            words.append(AsrWord(f" {token}", start, start + step * 0.9, 1.0))
    return words


def test_whole_diarization_runs_with_an_onnx_encoder(
    tiny_onnx: Path, ml_settings: MLSettings
) -> None:
    models = load_models(ml_settings.model_copy(update={"ml_speaker_model": str(tiny_onnx)}))
    assert isinstance(models.speaker_encoder, OnnxSpeakerEncoder)
    assert "tiny.onnx" in models.names["speaker_encoder"]  # what metadata.models reports
    media = dialogue("wav")
    audio = decode(media.path, max_duration_s=600)
    words = _turn_words(media)
    result = diarize(audio, detect_speech(audio), words, DiarizeSettings(), models.speaker_encoder)
    # Its speakers are whatever a random projection gives: only that diarization ran through.
    assert len(result.word_speakers) == len(words)
    assert result.num_speakers >= 1 and set(result.word_speakers) <= set(range(result.num_speakers))


def test_a_missing_or_invalid_model_stops_the_start(
    tmp_path: Path, ml_settings: MLSettings
) -> None:
    missing = tmp_path / "absent.onnx"
    with pytest.raises(SpeakerModelError, match=r"absent\.onnx: no such file"):
        load_models(ml_settings.model_copy(update={"ml_speaker_model": str(missing)}))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(SpeakerModelError, match="not a loadable ONNX model"):
        OnnxSpeakerEncoder.load(garbage)
    forty = _export(tmp_path / "forty.onnx", _MeanProjection(in_dim=40), in_dim=40)
    with pytest.raises(SpeakerModelError, match=r"expected one input \(batch, frames, 80\)"):
        OnnxSpeakerEncoder.load(forty)


def test_region_shorter_than_a_window_still_embeds(tiny_onnx: Path) -> None:
    encoder = OnnxSpeakerEncoder.load(tiny_onnx)
    audio = decode(dialogue("wav").path, max_duration_s=600)
    windows = speech_windows([SpeechRegion(1.0, 1.5)], audio.duration, 0.8)
    assert embed_windows(audio, windows, encoder).shape == (1, DIM)
