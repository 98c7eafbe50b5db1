"""Hand-made results and callbacks: the wire example every service test sends, the callback
payloads the ML server posts, and AnalysisResults for caption and export tests.

    fake.finish(job_id, RESULT_WIRE)                 # what an ML server sends (start_time/end_time)
    await backend.callback(processing(job_id, 30))   # then completed(job_id), with RESULT_WIRE
    caption_result(), mixed_shape_result()           # AnalysisResults with long and marked-up text
"""

from __future__ import annotations

import copy
from typing import Any

from ecg_protocol import AnalysisResult

# A result as the ML server sends it (the wire shape of docs/result-schema.md: segments carry
# start_time/end_time): one segment 4.908-8.754 s and one word with every optional measure but
# `probability`. Never mutate it: `completed` hands out copies.
RESULT_WIRE: dict[str, Any] = {
    "metadata": {
        "filename": "video.mp4",
        "duration": 143.39,
        "total_segments": 1,
        "unique_speakers": 1,
    },
    "segments": [
        {
            "start_time": 4.908,
            "end_time": 8.754,
            "speaker": {"speaker_id": "SPEAKER_01"},
            "text": "You know",
            "words": [
                {
                    "word": "You",
                    "start": 4.908,
                    "end": 4.988,
                    "volume_db": -19.87,
                    "pitch_hz": 851.09,
                }
            ],
        }
    ],
}


def processing(job_id: str, progress: int, stage: str = "transcribe") -> dict[str, Any]:
    """A progress callback body."""
    return {"job_id": job_id, "status": "processing", "progress": progress, "stage": stage}


def completed(job_id: str) -> dict[str, Any]:
    """A final callback body carrying a copy of RESULT_WIRE."""
    return {
        "job_id": job_id,
        "status": "completed",
        "progress": 100,
        "message": "Processing completed",
        "result": copy.deepcopy(RESULT_WIRE),
    }


LONG = (  # noqa: SIM905 - reads as a sentence
    "so the thing about building a caption exporter is that every line has to fit on "
    "the screen and every cue has to follow the speaker word by word without drifting"
).split()
_SECOND = ["Yes", "quiet", "LOUD", "<really>", "&", "truly."]


def _words(texts: list[str], start: float, volumes: dict[str, float]) -> list[dict[str, object]]:
    return [
        {
            "word": t,
            "start": round(start + i * 0.4, 3),
            "end": round(start + i * 0.4 + 0.32, 3),
            "volume_db": volumes.get(t, -20.0 - (i % 5)),
        }
        for i, t in enumerate(texts)
    ]


def caption_result() -> AnalysisResult:
    """Two speakers: a long segment that must split into cues, and a short one with markup
    characters and one loud and one quiet word."""
    return AnalysisResult.model_validate(
        {
            "metadata": {"filename": "20240101_120000_abcd1234_talk.mp4", "duration": 30.0},
            "segments": [
                {
                    "start": 0.5,
                    "end": round(0.5 + 0.4 * len(LONG), 3),
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": " ".join(LONG),
                    "words": _words(LONG, 0.5, {}),
                },
                {
                    "start": 14.0,
                    "end": 16.5,
                    "speaker": {"speaker_id": "SPEAKER_01"},
                    "text": " ".join(_SECOND),
                    "words": _words(_SECOND, 14.0, {"quiet": -40.0, "LOUD": -3.0}),
                },
            ],
        }
    )


def _spoken(texts: list[str], start: float, step: float = 0.4) -> list[dict[str, object]]:
    """Words as a recogniser writes them: a leading space, evenly spaced, 80 % voiced."""
    return [
        {"word": f" {t}", "start": start + i * step, "end": start + i * step + step * 0.8}
        for i, t in enumerate(texts)
    ]


def mixed_shape_result() -> AnalysisResult:
    """Two speakers, the first segment in the wire shape (start_time) and the second in the
    stored one (start); a long first segment that must split into cues, markup in the second."""
    return AnalysisResult.model_validate(
        {
            "metadata": {"filename": "a.mp4", "duration": 30.0},
            "segments": [
                {
                    "start_time": 0.5,
                    "end_time": 0.5 + 0.4 * len(LONG),
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": " ".join(LONG),
                    "words": _spoken(LONG, 0.5),
                },
                {
                    "start": 14.0,
                    "end": 15.5,
                    "speaker": {"speaker_id": "SPEAKER_01"},
                    "text": "Yes <really> & truly.",
                    "words": _spoken(["Yes", "<really>", "&", "truly."], 14.0),
                },
            ],
        }
    )
