"""Errors a pipeline stage raises: one stable code per failure, the library error chained."""

from __future__ import annotations

from ecg_protocol import ErrorCode, Stage


class StageError(Exception):
    """A stage failed; `code` is what the failed callback carries.

    Raise it chained so the cause stays in the log:
    `raise StageError(Stage.DECODE, ErrorCode.UNSUPPORTED_MEDIA, "not a media file") from exc`.
    """

    def __init__(self, stage: Stage, code: ErrorCode, message: str) -> None:
        super().__init__(f"{stage.value}: {code.value}: {message}")
        self.stage = stage
        self.code = code
        self.message = message


class Cancelled(Exception):
    """The job was cancelled (`should_cancel()` turned true); raised between stages."""

    def __init__(self, stage: Stage) -> None:
        super().__init__(f"cancelled before {stage.value}")
        self.stage = stage
