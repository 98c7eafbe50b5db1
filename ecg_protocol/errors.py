"""Stable error codes carried by failed jobs and failed callbacks."""

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a job failed. The first four are the guide's; the rest say exactly what went wrong."""

    # The guide's codes (dispatch from the backend to the ML server).
    TIMEOUT_ERROR = "TIMEOUT_ERROR"
    CONNECTION_ERROR = "CONNECTION_ERROR"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
    ML_SERVER_ERROR = "ML_SERVER_ERROR"

    # Input problems found by the ML server.
    DOWNLOAD_ERROR = "DOWNLOAD_ERROR"
    DOWNLOAD_TIMEOUT = "DOWNLOAD_TIMEOUT"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    URL_NOT_ALLOWED = "URL_NOT_ALLOWED"
    UNSUPPORTED_MEDIA = "UNSUPPORTED_MEDIA"
    NO_AUDIO_TRACK = "NO_AUDIO_TRACK"
    # The language asked for is unknown, or the loaded ASR model cannot transcribe it.
    UNSUPPORTED_LANGUAGE = "UNSUPPORTED_LANGUAGE"

    # Processing problems.
    PROCESSING_ERROR = "PROCESSING_ERROR"
    CANCELLED = "CANCELLED"
    WORKER_LOST = "WORKER_LOST"
    # The analysis process died on this media (native crash, killed) twice: never retried again.
    MEDIA_CRASHED = "MEDIA_CRASHED"
    # The analysis process passed its memory cap (ML_WORKER_MAX_RSS_MB) or its time bound.
    MEMORY_LIMIT = "MEMORY_LIMIT"
    ANALYSIS_TIMEOUT = "ANALYSIS_TIMEOUT"

    # Backend-side outcomes.
    DISPATCH_REJECTED = "DISPATCH_REJECTED"
    JOB_LOST = "JOB_LOST"
    ML_SERVER_UNREACHABLE = "ML_SERVER_UNREACHABLE"
