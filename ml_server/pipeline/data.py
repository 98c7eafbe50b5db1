"""Typed values passed between stages. Times are seconds from the start of the media."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio: mono float32 in [-1, 1] at `sample_rate` Hz."""

    samples: FloatArray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return float(self.samples.shape[0]) / self.sample_rate


def mean_square(samples: FloatArray, block: int = 1 << 20) -> float:
    """Mean of the squared samples, in float64 one block at a time (no full-length copy)."""
    if samples.size == 0:
        return 0.0
    total = sum(
        float(np.dot(part, part))
        for part in (
            samples[i : i + block].astype(np.float64) for i in range(0, samples.size, block)
        )
    )
    return total / samples.size


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
