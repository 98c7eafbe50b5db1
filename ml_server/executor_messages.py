"""The messages between a `ChildAnalyser` and its analysis child (`executor_child`).

Frozen dataclasses sent over the socket pair (pickled), matched with `match` on each side. They
live apart from `executor_child` because the child runs that module as `__main__`: a class
defined there would not unpickle in the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecg_protocol import ErrorCode, Stage
from ml_server.pipeline.run import PipelineOptions

# ----------------------------------------------------------------- parent → child


@dataclass(frozen=True, slots=True)
class Configure:
    """The first message: the settings the child loads its models with (`MLSettings` as JSON)."""

    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunJob:
    """Analyse the media at `media` (a local path)."""

    job_id: str
    media: str
    options: PipelineOptions
    asr_model: str | None = None  # a held ASR model's id (None: the configured one)


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Stop the running job at its next stage boundary."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Exit once the running job (if any) is done."""


ToChild = Configure | RunJob | CancelJob | Stop

# ----------------------------------------------------------------- child → parent


@dataclass(frozen=True, slots=True)
class Ready:
    """The models loaded (`ok`), or why they did not."""

    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class Duration:
    """The container's declared duration, so the parent can size the job's time bound."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Progress:
    stage: Stage
    percent: int


@dataclass(frozen=True, slots=True)
class Result:
    """The job's `AnalysisResult`, as JSON (validated once, by the parent)."""

    json: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The job failed with a stage error (or an unexpected exception, `PROCESSING_ERROR`)."""

    stage: Stage
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class JobCancelled:
    """The job honoured a cancel at `stage`."""

    stage: Stage


FromChild = Ready | Duration | Progress | Result | Failed | JobCancelled
