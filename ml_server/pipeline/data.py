"""Typed values passed between stages. Times are seconds from the start of the media."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

FloatArray = npt.NDArray[np.float32]
PcmArray = npt.NDArray[np.int16]

# 16-bit PCM full scale: sample / PCM_SCALE is the float in [-1, 1). Every int16 value divided
# by 2**15 is exact in float32, so a float view holds exactly the quantised signal.
PCM_SCALE = 32768.0
# Whole-signal sums (loudness) read this many samples at a time: 8 MB of float64 per block.
BLOCK = 1 << 20


def to_pcm(samples: npt.NDArray[Any]) -> PcmArray:
    """Float samples in [-1, 1] as 16-bit PCM (rounded, clipped to the int16 range).

    A float stream can carry NaN or ±inf (a broken encoder, a crafted file); cast to int16 they
    would be arbitrary values, i.e. full-scale clicks. They become silence and full scale."""
    floats = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    scaled = np.rint(floats * np.float32(PCM_SCALE))
    pcm: PcmArray = np.clip(scaled, -PCM_SCALE, PCM_SCALE - 1).astype(np.int16)
    return pcm


def to_float(pcm: PcmArray) -> FloatArray:
    """16-bit PCM as float32 in [-1, 1): a new array, exact."""
    out: FloatArray = pcm.astype(np.float32)
    out *= np.float32(1 / PCM_SCALE)
    return out


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio: mono 16-bit PCM at `sample_rate` Hz.

    Held as int16 (32 KB per second, 115 MB per hour), not float32: the decoded audio is the
    one thing every stage keeps for the whole job, so on hours of media it sets the peak
    (docs/benchmarks.md, "Memory against media duration"). Stages make float32 copies of the
    window, group or block they work on (`window`, `gather`), never of the whole signal.
    Float input (synthetic signals in tests) is quantised on construction.
    """

    pcm: PcmArray
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16:
            object.__setattr__(self, "pcm", to_pcm(self.pcm))

    @property
    def size(self) -> int:
        """Number of samples."""
        return int(self.pcm.shape[0])

    @property
    def duration(self) -> float:
        return self.size / self.sample_rate

    def window(self, start: int = 0, end: int | None = None) -> FloatArray:
        """Samples [start, end) as float32 (indices clipped to the signal)."""
        n = self.size
        a = min(max(start, 0), n)
        b = n if end is None else min(max(end, a), n)
        return to_float(self.pcm[a:b])

    def piece(self, start: int, end: int) -> Audio:
        """Samples [start, end) as an Audio of their own (a view: nothing is copied)."""
        return Audio(self.pcm[max(start, 0) : max(end, 0)], self.sample_rate)

    def gather(self, chunks: list[dict[str, int]]) -> FloatArray:
        """The float32 samples of `chunks` (faster-whisper's {"start", "end"} sample indices)
        end to end, as `collect_chunks` concatenates them, in one allocation."""
        n = self.size
        bounds = [(min(max(c["start"], 0), n), min(max(c["end"], 0), n)) for c in chunks]
        out: FloatArray = np.empty(sum(max(0, b - a) for a, b in bounds), dtype=np.float32)
        at = 0
        for a, b in bounds:
            if b > a:
                out[at : at + b - a] = self.pcm[a:b]
                at += b - a
        out *= np.float32(1 / PCM_SCALE)
        return out


def mean_square(audio: Audio, block: int = BLOCK) -> float:
    """Mean of the squared float samples, in float64 one block at a time (no full-length copy)."""
    n = audio.size
    if n == 0:
        return 0.0
    total = sum(
        float(np.dot(part, part))
        for part in (audio.pcm[i : i + block].astype(np.float64) for i in range(0, n, block))
    )
    return total / n / PCM_SCALE**2


@dataclass(frozen=True, slots=True)
class DecodingHints:
    """A request's decoding hints, as OpenAI's and faster-whisper's APIs name them."""

    task: str = "transcribe"  # or "translate": English text out (a multilingual model only)
    prompt: str | None = None  # initial_prompt: names and terms to spell right, the style
    hotwords: str | None = None
    temperature: float | None = None  # > 0: sample at this temperature, no fallback


@dataclass(frozen=True, slots=True)
class SpeechRegion:
    """A stretch of speech found by voice activity detection."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class AsrWord:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class AsrSegment:
    start: float
    end: float
    text: str
    words: tuple[AsrWord, ...]
    # Decoded at the first temperature, not by the sampling fallback (which Whisper turns to
    # when the text looks wrong: a loop, or tokens it is unsure of).
    greedy: bool = True
    # Greedy and passing Whisper's own test of a decode (log-prob, gzip ratio). The same as
    # `greedy` when there is a fallback temperature; with none, a failed decode is kept as
    # is, and only this tells it apart.
    confident: bool = True
    # The language it was decoded in: the media's, or another where a turn was read in its own
    # (transcribe.in_other_languages). None only before `transcribe` fills it in.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    language: str | None
    language_probability: float
    segments: tuple[AsrSegment, ...]

    @property
    def words(self) -> list[AsrWord]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """A run of time attributed to one speaker by the diarization stage."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True, slots=True)
class Diarization:
    """Per-word speaker labels (0-based, ordered by first appearance) and their confidence."""

    word_speakers: tuple[int, ...]
    word_confidence: tuple[float, ...]
    num_speakers: int
    turns: tuple[SpeakerTurn, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class WordProsody:
    volume_db: float
    pitch_hz: float | None
