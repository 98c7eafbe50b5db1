"""Wire schemas: the backend → ML server request, the ML server → backend callback, the result.

Segments travel in the guide's (docs/guide.md) ML-server shape (`start_time`/`end_time`) and are
stored and served in the backend's shape (`start`/`end`). One model covers both: it accepts either
name, `model_dump()` gives the stored form and `model_dump(by_alias=True)` the wire form.

Input is lenient (a guide-style ML server may omit the extension fields) and output is complete:
every word always carries every key, with `null` where a value does not exist.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ecg_protocol.errors import ErrorCode

SCHEMA_VERSION: Literal["1"] = "1"

# Times are bounded so every consumer can format them (a finite 1e306 s overflows a caption
# timestamp). Policy, not fitted: a week is far past the longest media supported (3 h), and a
# time may run this far past the media's end, as Whisper's last 30 s window can overrun it.
MAX_MEDIA_S = 7 * 24 * 3600.0
TIME_SLACK_S = 30.0


class JobStatus(StrEnum):
    """A job's state. It only moves forward: pending → processing → completed | failed."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


class Stage(StrEnum):
    """Pipeline stages in the order they run; progress callbacks name one of these."""

    QUEUED = "queued"
    DOWNLOAD = "download"
    DECODE = "decode"
    VAD = "vad"
    TRANSCRIBE = "transcribe"
    ALIGN = "align"
    DIARIZE = "diarize"
    PROSODY = "prosody"
    EMOTION = "emotion"
    FINALIZE = "finalize"
    DONE = "done"


class _Model(BaseModel):
    # Numbers on the wire are finite: a NaN or an infinity is refused at validation, in both
    # directions, so nothing non-finite is ever stored or served (JSON has no such numbers).
    model_config = ConfigDict(populate_by_name=True, extra="ignore", allow_inf_nan=False)


# --------------------------------------------------------------------------- backend → ML


class ProcessOptions(_Model):
    """Hints for the analysis (ext)."""

    min_speakers: int | None = Field(default=None, ge=1, le=32)
    max_speakers: int | None = Field(default=None, ge=1, le=32)
    # Decoding hints, as OpenAI's and faster-whisper's APIs name them; None = the server default.
    task: Literal["transcribe", "translate"] | None = None  # translate: English text out
    prompt: str | None = Field(default=None, max_length=2000)  # faster-whisper initial_prompt
    hotwords: str | None = Field(default=None, max_length=1000)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    # One of the ASR models the ML server holds (`GET /languages` lists them: `models`);
    # None = its configured model. Older servers ignore it (extra keys are ignored).
    model: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> ProcessOptions:
        if (
            self.min_speakers is not None
            and self.max_speakers is not None
            and self.min_speakers > self.max_speakers
        ):
            raise ValueError("min_speakers must not exceed max_speakers")
        return self


class ProcessRequest(_Model):
    """`POST {MODEL_SERVER_URL}/process` body: exactly the guide's payload plus `options`."""

    job_id: str = Field(min_length=1, max_length=64)
    video_url: str = Field(min_length=1, max_length=8192)
    fastapi_base_url: str = Field(min_length=1, max_length=2048)
    # `auto`, one code (`ko`) or a comma-separated list (`ko,en`); see ecg_protocol.languages.
    language: str = Field(default="auto", min_length=2, max_length=256)
    filename: str | None = Field(default=None, max_length=512)
    options: ProcessOptions = Field(default_factory=ProcessOptions)


# ------------------------------------------------------------- result (docs/result-schema.md)


class Word(_Model):
    """One word. Every key is always present on output; `pitch_hz` is null when unvoiced."""

    word: str
    start: float
    end: float
    speaker_id: str | None = None
    volume_db: float | None = None
    pitch_hz: float | None = None
    probability: float | None = None


class Speaker(_Model):
    speaker_id: str
    confidence: float | None = None


class Emotion(_Model):
    label: str
    score: float
    scores: dict[str, float] = Field(default_factory=dict)
    # How it was found (ext): `text+prosody` (English), `prosody` (other languages: no text
    # valence), or `classifier` (ML_EMOTION_MODEL).
    method: str | None = None


class Segment(_Model):
    start: float = Field(
        validation_alias=AliasChoices("start", "start_time"), serialization_alias="start_time"
    )
    end: float = Field(
        validation_alias=AliasChoices("end", "end_time"), serialization_alias="end_time"
    )
    speaker: Speaker
    text: str = ""
    words: list[Word] = Field(default_factory=list)
    emotion: Emotion | None = None
    # The language the segment was read in (ISO 639-1): the media's `metadata.language`, or
    # another where a turn in another language was read in its own; null in older results.
    language: str | None = None


class Metadata(_Model):
    filename: str | None = None
    duration: float | None = Field(default=None, ge=0.0, le=MAX_MEDIA_S)
    total_segments: int = 0
    unique_speakers: int = 0
    language: str | None = None
    language_probability: float | None = None
    models: dict[str, str] = Field(default_factory=dict)
    # How word start/end were timed: "whisper" (the ASR's own) or the alignment method.
    word_timing: str | None = None
    processing_time: dict[str, float] = Field(default_factory=dict)


class AnalysisResult(_Model):
    """The analysis of one video (docs/result-schema.md)."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    metadata: Metadata = Field(default_factory=Metadata)
    segments: list[Segment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _times_within_the_media(self) -> AnalysisResult:
        """Every time lies within the media (± TIME_SLACK_S); MAX_MEDIA_S when its length is
        unknown."""
        duration = self.metadata.duration
        for n, seg in enumerate(self.segments):
            _check_time(f"segments[{n}]", seg.start, seg.end, duration)
            for k, word in enumerate(seg.words):
                _check_time(f"segments[{n}].words[{k}]", word.start, word.end, duration)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The guide's ML-server shape (`start_time`/`end_time` on segments)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_stored(self) -> dict[str, Any]:
        """The backend's normalized shape (`start`/`end` on segments)."""
        return self.model_dump(mode="json")


def _check_time(where: str, start: float, end: float, duration: float | None) -> None:
    limit = MAX_MEDIA_S if duration is None else duration + TIME_SLACK_S
    for name, t in (("start", start), ("end", end)):
        if not -TIME_SLACK_S <= t <= limit:
            media = f"the media's {duration:g} s" if duration is not None else "a week"
            raise ValueError(
                f"{where}.{name} = {t:g} s lies outside {media} (± {TIME_SLACK_S:g} s)"
            )


def normalize_timestamp_fields(result: dict[str, Any]) -> dict[str, Any]:
    """Validate a raw result and return it in the stored shape (the guide's normalizer)."""
    return AnalysisResult.model_validate(result).to_stored()


# --------------------------------------------------------------------------- ML → backend


CallbackStatus = Literal["processing", "completed", "failed"]


class CallbackPayload(_Model):
    """`POST {fastapi_base_url}/api/upload-video/result` body (the guide's shape plus `stage`)."""

    job_id: str = Field(min_length=1, max_length=64)
    status: CallbackStatus
    progress: int = Field(default=0, ge=0, le=100)
    message: str | None = None
    stage: Stage | None = None
    result: AnalysisResult | None = None
    error_message: str | None = None
    error_code: ErrorCode | str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CallbackPayload:
        if self.status == "completed" and self.result is None:
            raise ValueError("a completed callback must carry a result")
        if self.status == "failed" and not (self.error_code or self.error_message):
            raise ValueError("a failed callback must carry error_code or error_message")
        return self
