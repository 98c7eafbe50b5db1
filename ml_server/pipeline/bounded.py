"""Memory bounded by design: voice activity detection over bounded windows of long media.

Silero VAD (faster-whisper) builds a batch of every 32 ms frame with its context (about 21 MB
per minute of audio) of whatever array it is given; on a 3-hour file that is gigabytes.
`detect_speech` feeds it windows of `VAD_WINDOW_S` of audio and joins a region cut by a window
edge with its other half, so the working memory depends on the window, not on the media
(docs/benchmarks.md, "Memory against media duration"). Transcription is bounded the same way,
in groups of regions (`transcribe.groups`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from ml_server.pipeline import vad
from ml_server.pipeline.data import Audio, SpeechRegion

# 60 s of VAD input is ~21 MB of Silero batch, far from the per-window fixed cost (one ONNX
# call), so windowing costs no measurable speed (bench/bench_memory.py).
VAD_WINDOW_S = 60.0
# Regions within this of a window edge on both sides are one region the edge cut (VAD pads
# speech by 0.2 s, so a cut region ends or starts at the edge itself).
_EDGE_S = 0.25
# Windows run this many at a time: faster-whisper's Silero session is one ONNX thread, so on
# its own VAD holds one core while every other stage waits for it (13 min of ami-dev, 2 cores:
# 1.5 s on one thread, issue 22). A window's regions do not depend on its neighbours (they are
# joined after), so the answer is the same; memory is this many windows' batches.
VAD_THREADS = 2


def detect_speech(audio: Audio, window_s: float = VAD_WINDOW_S) -> list[SpeechRegion]:
    """`vad.detect_speech` over windows of `window_s`; regions in seconds of the whole media."""
    step = int(window_s * audio.sample_rate)
    total = audio.size
    if total <= step:
        return vad.detect_speech(audio)
    starts = range(0, total, step)

    def window(start: int) -> list[SpeechRegion]:
        return vad.detect_speech(audio.piece(start, start + step))  # VAD makes its float copy

    threads = max(1, min(VAD_THREADS, os.cpu_count() or 1, len(starts)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ecg-vad") as pool:
        found = list(pool.map(window, starts))  # in media order
    regions: list[SpeechRegion] = []
    for start, pieces in zip(starts, found, strict=True):
        edge = start / audio.sample_rate
        for region in pieces:
            moved = SpeechRegion(region.start + edge, region.end + edge)
            if regions and regions[-1].end >= edge - _EDGE_S and moved.start <= edge + _EDGE_S:
                regions[-1] = SpeechRegion(regions[-1].start, moved.end)  # cut by the edge
            else:
                regions.append(moved)
    return regions
