"""What transcription holds and is asked: the worker's ASR models and one job's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from faster_whisper import BatchedInferencePipeline, WhisperModel

from ml_server.pipeline.data import DecodingHints


@dataclass(frozen=True, slots=True)
class AsrModels:
    """The ASR models a worker holds: the main one and the optional faster English route."""

    main: WhisperModel
    main_batched: BatchedInferencePipeline | None = None
    english: WhisperModel | None = None
    english_batched: BatchedInferencePipeline | None = None


@dataclass(frozen=True, slots=True)
class TranscribeSettings:
    # One code: transcribe in it. Several: detect among them. None: detect among all.
    languages: tuple[str, ...] | None = None
    beam_size: int = 1
    batch_size: int = 8
    temperatures: tuple[float, ...] = (0.0, 0.4)
    detection_windows: int = 3
    hints: DecodingHints = field(default_factory=DecodingHints)

    @property
    def language(self) -> str | None:
        """The one asked language, if exactly one was asked."""
        return self.languages[0] if self.languages and len(self.languages) == 1 else None
