"""Decode stage: any container/codec (PyAV's FFmpeg) → 16 kHz mono float32."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from ecg_protocol import ErrorCode, Stage
from ml_server.pipeline.data import SAMPLE_RATE, Audio
from ml_server.pipeline.errors import StageError

logger = logging.getLogger(__name__)


def decode(media_path: Path, *, max_duration_s: float) -> Audio:
    """Decode the first audio stream of `media_path` to 16 kHz mono float32."""
    try:
        container = av.open(str(media_path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise StageError(Stage.DECODE, ErrorCode.UNSUPPORTED_MEDIA, "not a media file") from exc
    with container:
        if not container.streams.audio:
            raise StageError(Stage.DECODE, ErrorCode.NO_AUDIO_TRACK, "the media has no audio")
        stream = container.streams.audio[0]
        if container.duration is not None and container.duration / 1e6 > max_duration_s:
            raise _too_long(container.duration / 1e6, max_duration_s)
        max_samples = int(max_duration_s * SAMPLE_RATE)
        # Keep the channels and average them: FFmpeg's own downmix adds +3 dB for identical
        # channels, which would skew volume_db between mono and stereo uploads.
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    chunks.append(chunk)
                    total += chunk.shape[0]
                if total > max_samples:
                    raise _too_long(total / SAMPLE_RATE, max_duration_s)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise StageError(
                    Stage.DECODE, ErrorCode.UNSUPPORTED_MEDIA, f"cannot decode audio: {exc}"
                ) from exc
            # A damaged tail is common in uploads; keep what decoded.
            logger.warning("decode stopped early after %d samples: %s", total, exc)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    samples = np.clip(samples.astype(np.float32, copy=False), -1.0, 1.0)
    return Audio(samples=samples, sample_rate=SAMPLE_RATE)


def _too_long(duration_s: float, limit_s: float) -> StageError:
    return StageError(
        Stage.DECODE,
        ErrorCode.FILE_TOO_LARGE,
        f"media lasts {duration_s:.0f} s, over the {limit_s:.0f} s limit",
    )
