"""Hand-made AnalysisResults for caption and export tests."""

from __future__ import annotations

from ecg_protocol import AnalysisResult

_FIRST = (  # noqa: SIM905 - reads as a sentence
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
                    "end": round(0.5 + 0.4 * len(_FIRST), 3),
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": " ".join(_FIRST),
                    "words": _words(_FIRST, 0.5, {}),
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
