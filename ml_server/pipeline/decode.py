"""Decode stage: any container/codec and channel layout (PyAV's FFmpeg) → 16 kHz mono PCM.

Frames are resampled to *packed* float (`flt`) at 16 kHz with their own layout and downmixed
here with numpy: PyAV's `to_ndarray` crashes the process on planar frames with 8 or more
channels (7.1 and beyond), while a packed frame is one plane whatever its channel count. Each
mixed frame is quantised to 16 bits straight into one preallocated buffer, so decoding holds
the audio once (2 bytes per sample, 32 KB per second), not a list of chunks plus their
concatenation, and never as float32 whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ecg_protocol import ErrorCode, Stage
from ml_server.pipeline.data import SAMPLE_RATE, Audio, FloatArray, PcmArray, to_pcm
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.level import peak_dbfs, remove_offset

logger = logging.getLogger(__name__)

# ITU-R BS.775 fold-down (the stereo downmix every decoder applies: centre and surrounds at
# -3 dB into each side, LFE dropped), averaged to mono. The weights are then normalised to sum
# to 1, so a signal present in every channel keeps its level (mono, stereo and 7.1 uploads of
# the same sound report the same volume_db) and the mix can never clip.
_FRONT = 0.5
_CENTRE = 0.7071
_OTHER = 0.3536  # surrounds, backs, sides, heights, wides: -3 dB into one side, halved
_WEIGHTS = {"FL": _FRONT, "FR": _FRONT, "FC": _CENTRE, "LFE": 0.0, "LFE2": 0.0}
# The downmix keeps under this share of what unrelated channels would give only when the
# channels cancel (see `_Mixer.cancelled`); then the loudest channel is taken alone.
CANCELLED = 0.2
# An audio stream whose peak is under this is silent (an unconnected input, an empty track):
# 1 in 32 768 is -90 dBFS, so this is 30 dB above the last bit.
SILENT_PEAK_DBFS = -60.0
# Streams tried for one with sound: professional cameras record up to 8 tracks; a crafted
# file with hundreds of silent ones must not cost hundreds of decodes.
MAX_STREAMS_TRIED = 8
# A frame this much later than the samples before it end marks a gap of silence (AAC priming
# and timestamp rounding move frames by a few milliseconds).
_MIN_GAP_S = 0.05
# Channel energy (sum of squared float samples) below which the media is silence, not
# cancelled: 1 s at 16 kHz of a -60 dBFS signal.
_AUDIBLE = 16_000 * 1e-6


def downmix_weights(channel_names: list[str]) -> FloatArray:
    """Mono weights for a layout's channels (FFmpeg names); unnamed channels weigh the same."""
    if all(name in ("", "NONE") for name in channel_names):
        weights = np.ones(len(channel_names), dtype=np.float32)
    else:
        weights = np.array([_WEIGHTS.get(n, _OTHER) for n in channel_names], dtype=np.float32)
    if not weights.any():  # only LFE channels: still the only sound there is
        weights = np.ones(len(channel_names), dtype=np.float32)
    normalised: FloatArray = weights / weights.sum()
    return normalised


class _Buffer:
    """A growing int16 buffer that never holds the audio twice.

    Growing and the final trim use `ndarray.resize`, which is `realloc`: for a buffer this size
    glibc moves pages with `mremap` instead of copying, so a container whose declared duration
    was short costs no second copy.
    """

    def __init__(self, expected: int, limit: int) -> None:
        self._limit = limit
        self.samples: PcmArray = np.zeros(max(expected, SAMPLE_RATE), dtype=np.int16)
        self.size = 0

    def append(self, chunk: FloatArray) -> bool:
        """Add `chunk` (float, quantised here); False once the total passes the limit."""
        end = self.size + chunk.shape[0]
        if end > self._limit:
            return False
        if end > self.samples.shape[0]:
            grown = min(max(end, self.samples.shape[0] * 5 // 4), self._limit)
            self.samples.resize(grown, refcheck=False)
        self.samples[self.size : end] = to_pcm(chunk)
        self.size = end
        return True

    def take(self) -> PcmArray:
        """The decoded samples, the unused tail given back."""
        self.samples.resize(self.size, refcheck=False)
        return self.samples


def decode(media_path: Path, *, max_duration_s: float) -> Audio:
    """Decode the first audio stream of `media_path` to 16 kHz mono 16-bit PCM.

    When that stream is silent and the media has others (a camera's unconnected first input,
    a recorder's empty first track), the first one with sound is taken instead (of the first
    MAX_STREAMS_TRIED). When the channels cancel in the downmix (one of a stereo pair wired
    in reverse phase: the mono mix is near silence though each channel is loud), the stream
    is decoded once more from its loudest channel alone.
    """
    n = 0
    while True:
        audio, streams = _stream(media_path, max_duration_s, n)
        if n + 1 >= min(streams, MAX_STREAMS_TRIED) or peak_dbfs(audio) > SILENT_PEAK_DBFS:
            return audio
        del audio  # never two copies of the media at once
        logger.warning("%s: audio stream %d is silent; trying the next", media_path.name, n)
        n += 1


def _stream(media_path: Path, max_duration_s: float, n: int) -> tuple[Audio, int]:
    """Audio stream `n` (of how many there are), its channels undone if they cancel."""
    mixer = _Mixer()
    audio, streams = _decode(media_path, max_duration_s, mixer, n)
    if not mixer.cancelled():
        return audio, streams
    del audio
    logger.warning("%s: the channels cancel in the downmix; using the loudest", media_path.name)
    return _decode(media_path, max_duration_s, _Mixer(loudest=mixer.loudest()), n)


def _decode(media_path: Path, max_duration_s: float, mixer: _Mixer, n: int) -> tuple[Audio, int]:
    """Audio stream `n` of the media, mixed by `mixer`, and the number of audio streams."""
    try:
        container = av.open(str(media_path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise StageError(Stage.DECODE, ErrorCode.UNSUPPORTED_MEDIA, "not a media file") from exc
    with container:
        if not container.streams.audio:
            raise StageError(Stage.DECODE, ErrorCode.NO_AUDIO_TRACK, "the media has no audio")
        streams = len(container.streams.audio)
        stream = container.streams.audio[n]
        declared_s = container.duration / 1e6 if container.duration is not None else None
        if declared_s is not None and declared_s > max_duration_s:
            raise _too_long(declared_s, max_duration_s)
        max_samples = int(max_duration_s * SAMPLE_RATE)
        # A container's duration is usually right; the buffer grows when it is not.
        expected = int((declared_s or 60.0) * SAMPLE_RATE * 1.01) + SAMPLE_RATE
        buffer = _Buffer(min(expected, max_samples), max_samples)
        # Times are the media's: the earliest stream starts at 0 (a video's audio may start
        # later, or pause; captions must follow the picture).
        origin = container.start_time / 1e6 if container.start_time is not None else None
        try:
            for frame in container.decode(stream):
                if origin is None:
                    origin = frame.time or 0.0
                gap = _missing(frame, origin, buffer.size, declared_s)
                if gap:
                    # What the resampler holds came before the gap: out first, then silence.
                    chunks = [*mixer.flush(), np.zeros(gap, dtype=np.float32)]
                    if not all(buffer.append(chunk) for chunk in chunks):
                        raise _too_long(None, max_duration_s)
                for chunk in mixer.mix(frame):
                    if not buffer.append(chunk):
                        raise _too_long(None, max_duration_s)
            for chunk in mixer.flush():
                if not buffer.append(chunk):
                    raise _too_long(None, max_duration_s)
        except av.error.FFmpegError as exc:
            if buffer.size == 0:
                raise StageError(
                    Stage.DECODE, ErrorCode.UNSUPPORTED_MEDIA, f"cannot decode audio: {exc}"
                ) from exc
            # A damaged tail is common in uploads; keep what decoded.
            logger.warning("decode stopped early after %d samples: %s", buffer.size, exc)
    pcm = buffer.take()  # clipped by `to_pcm`
    offset = remove_offset(pcm)  # before anything reads a level (level.OFFSET_DBFS)
    if offset:
        logger.info("%s: constant offset of %d / 32768 removed", media_path.name, offset)
    return Audio(pcm=pcm, sample_rate=SAMPLE_RATE), streams


class _Mixer:
    """Resamples frames to packed float at 16 kHz and downmixes them to mono.

    A new resampler is made when the stream's format, layout or rate changes mid-stream
    (spliced uploads do this); the old one is flushed first so no samples are lost. It also
    keeps how much of the channels' energy the mix kept (`cancelled`) and each layout's
    loudest channel; given `loudest`, those layouts are taken from that channel alone.
    """

    def __init__(self, loudest: dict[str, int] | None = None) -> None:
        self._resampler: av.AudioResampler | None = None
        self._key: tuple[str, str, int] | None = None
        self._weights: FloatArray = np.ones(1, dtype=np.float32)
        self._pick = loudest or {}
        self._mixed = 0.0  # energy of the mix
        self._channels = 0.0  # the weights applied to each channel's own energy (loudness)
        self._unrelated = 0.0  # the mix's energy were the channels unrelated: Σ w² E
        self._energy: dict[str, npt.NDArray[np.float64]] = {}  # per layout, per channel

    def mix(self, frame: av.AudioFrame) -> list[FloatArray]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        out: list[FloatArray] = []
        if key != self._key:
            out.extend(self.flush())
            names = [channel.name for channel in frame.layout.channels]
            self._weights = downmix_weights(names)
            if frame.layout.name in self._pick:
                self._weights = np.zeros(len(names), dtype=np.float32)
                self._weights[self._pick[frame.layout.name]] = 1.0
            self._resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=SAMPLE_RATE)
            self._key = key
        assert self._resampler is not None
        out.extend(self._downmix(piece) for piece in self._resampler.resample(frame))
        return out

    def flush(self) -> list[FloatArray]:
        if self._resampler is None:
            return []
        pieces = [self._downmix(piece) for piece in self._resampler.resample(None)]
        self._resampler = None
        self._key = None
        return pieces

    def cancelled(self) -> bool:
        """The mix kept under CANCELLED of what unrelated channels would give (Σ w² E): for
        two channels of equal level a correlation under -0.8, which only a channel in reverse
        phase gives (identical channels give twice that much, unrelated ones as much, at any
        channel count: 16 separate microphones are not "cancelled"). Silence is not."""
        return self._channels > _AUDIBLE and self._mixed < CANCELLED * self._unrelated

    def loudest(self) -> dict[str, int]:
        """Each layout's loudest channel (of those the downmix uses)."""
        return {layout: int(np.argmax(energy)) for layout, energy in self._energy.items()}

    def _downmix(self, frame: av.AudioFrame) -> FloatArray:
        # Packed float (flt, as resampled): one plane of interleaved samples, shape
        # (1, samples × channels); asarray makes no copy.
        interleaved: FloatArray = np.asarray(frame.to_ndarray(), dtype=np.float32)
        interleaved = interleaved.reshape(-1, self._weights.shape[0])
        if not np.isfinite(interleaved).all():
            # One broken channel of a float stream (NaN/±inf) would make every mixed sample
            # NaN, and the other channels' speech silence: each channel is made finite first,
            # as `to_pcm` does a mono one (NaN silence, ±inf full scale).
            interleaved = np.nan_to_num(interleaved, nan=0.0, posinf=1.0, neginf=-1.0)
        mono: FloatArray = np.asarray(interleaved @ self._weights, dtype=np.float32)
        if interleaved.shape[1] > 1:
            energy = np.einsum("ij,ij->j", interleaved, interleaved, dtype=np.float64)
            layout = frame.layout.name
            # A channel the downmix leaves out (LFE) is never the one to take alone.
            heard: npt.NDArray[np.float64] = np.where(self._weights > 0, energy, 0.0)
            self._energy[layout] = self._energy.get(layout, 0.0) + heard
            self._mixed += float(np.dot(mono, mono))
            self._channels += float(energy @ self._weights)
            self._unrelated += float(energy @ np.square(self._weights))
        return mono


def _missing(frame: av.AudioFrame, origin: float, have: int, declared_s: float | None) -> int:
    """Samples of silence the frame's timestamp says are missing before it: the audio of a
    video that starts after the picture, or a stretch the recorder dropped. Shifts under
    _MIN_GAP_S (AAC priming, rounding) are not gaps; a timestamp past the media's declared end
    is broken, not a gap (it would fill the job's duration limit with silence)."""
    if frame.time is None:
        return 0
    at = frame.time - origin
    if declared_s is not None and at > declared_s:
        return 0
    gap = round(at * SAMPLE_RATE) - have
    return gap if gap >= _MIN_GAP_S * SAMPLE_RATE else 0


def _too_long(duration_s: float | None, limit_s: float) -> StageError:
    lasts = "longer" if duration_s is None else f"{duration_s:.0f} s"
    return StageError(
        Stage.DECODE,
        ErrorCode.FILE_TOO_LARGE,
        f"media lasts {lasts}, over the {limit_s:.0f} s limit",
    )
