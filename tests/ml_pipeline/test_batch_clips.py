"""The batched pipeline's clips: regions joined up to Whisper's 30 s window, never past it
(faster-whisper reads only the first 30 s of a clip and drops the rest)."""

from __future__ import annotations

import itertools

from ml_server.pipeline.transcribe.reading import BATCH_CLIP_S, batch_clips

RATE = 16_000


def _chunks(*seconds: float) -> list[dict[str, int]]:
    """Regions of these lengths, one second of silence apart in the media."""
    out, at = [], 0
    for s in seconds:
        out.append({"start": at, "end": at + int(s * RATE)})
        at += int((s + 1) * RATE)
    return out


def _lengths(clips: list[dict[str, float]]) -> list[float]:
    return [round(c["end"] - c["start"], 3) for c in clips]


def test_short_regions_are_joined_up_to_the_window() -> None:
    clips = batch_clips(_chunks(5, 5, 12, 10, 3), RATE)
    assert _lengths(clips) == [22.0, 13.0]
    # The clips tile the gathered speech, in order, with nothing left out.
    assert clips[0]["start"] == 0.0 and clips[-1]["end"] == 35.0
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(clips))


def test_no_clip_passes_the_window() -> None:
    # VAD caps a region at 30 s, but its padding can pass that: 30.4 s is cut in two halves.
    clips = batch_clips(_chunks(2, 30.4, 61, 1), RATE)
    assert max(_lengths(clips)) <= BATCH_CLIP_S
    assert _lengths(clips)[:3] == [2.0, 15.2, 15.2]
    assert [round(x, 1) for x in _lengths(clips)[3:]] == [20.3, 20.3, 20.3, 1.0]
    assert clips[-1]["end"] == 94.4


def test_no_speech_no_clip() -> None:
    assert batch_clips([], RATE) == []
    assert batch_clips([{"start": 5, "end": 5}], RATE) == []
