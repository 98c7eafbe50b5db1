"""Memory bounded by design: VAD and transcription run over bounded pieces of long media.

Both libraries work on whatever array they are given at once: Silero VAD (faster-whisper)
builds a batch of every 32 ms frame with its context (about 21 MB per minute of audio) and
faster-whisper computes the log-mel features of its whole input (about 70 MB per minute of
speech, measured). On a 3-hour file that is gigabytes. These drivers wrap the unchanged stages
and feed them bounded pieces, so the working memory depends on the piece, not on the media
(docs/benchmarks.md, "Memory against media duration"):

- `detect_speech`: windows of `VAD_WINDOW_S` of audio; a region cut by a window edge is joined
  again with its other half.
- `transcribe`: groups of speech regions of at most `ASR_GROUP_S` of speech each, cut between
  regions (in silence), in order; the language is chosen once on a bounded sample of the speech
  and kept for every group, so one file is not transcribed in several languages by accident.
"""

from __future__ import annotations

from collections.abc import Callable

from ml_server.pipeline import transcribe as asr
from ml_server.pipeline import vad
from ml_server.pipeline.data import AsrSegment, Audio, SpeechRegion, Transcript

# 60 s of VAD input is ~21 MB of Silero batch; 60 s of speech is ~70 MB of Whisper features.
# Both are far from the per-piece fixed costs (one ONNX call per window, one feature pass per
# group), so the drivers cost no measurable speed (bench/bench_memory.py).
VAD_WINDOW_S = 60.0
ASR_GROUP_S = 60.0
# Regions within this of a window edge on both sides are one region the edge cut (VAD pads
# speech by 0.2 s, so a cut region ends or starts at the edge itself).
_EDGE_S = 0.25


def detect_speech(audio: Audio, window_s: float = VAD_WINDOW_S) -> list[SpeechRegion]:
    """`vad.detect_speech` over windows of `window_s`; regions in seconds of the whole media."""
    step = int(window_s * audio.sample_rate)
    total = audio.size
    if total <= step:
        return vad.detect_speech(audio)
    regions: list[SpeechRegion] = []
    for start in range(0, total, step):
        edge = start / audio.sample_rate
        piece = audio.piece(start, start + step)  # int16 view; VAD makes its float copy
        for region in vad.detect_speech(piece):
            moved = SpeechRegion(region.start + edge, region.end + edge)
            if regions and regions[-1].end >= edge - _EDGE_S and moved.start <= edge + _EDGE_S:
                regions[-1] = SpeechRegion(regions[-1].start, moved.end)  # cut by the edge
            else:
                regions.append(moved)
    return regions


def group_regions(
    regions: list[SpeechRegion], max_s: float | None = None
) -> list[list[SpeechRegion]]:
    """Consecutive regions in groups of at most `max_s` (ASR_GROUP_S) of speech each.

    A last group under half of `max_s` joins the one before (so no group passes 1.5 × `max_s`):
    each group is a full decode with its own fixed costs, and on a short clip a few seconds of
    tail cost 15 % of the transcription (bench_pipeline, 63 s of speech: 2.10 s vs 1.83 s).
    """
    max_s = ASR_GROUP_S if max_s is None else max_s
    groups: list[list[SpeechRegion]] = []
    current: list[SpeechRegion] = []
    length = 0.0
    for region in regions:
        span = region.end - region.start
        if current and length + span > max_s:
            groups.append(current)
            current, length = [], 0.0
        current.append(region)
        length += span
    if current:
        if groups and length < max_s / 2:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def detection_sample(regions: list[SpeechRegion], windows: int) -> list[SpeechRegion]:
    """At most `windows` detection windows of speech for language detection, taken from the middle
    of the media outwards (as `detect_language` takes its windows), in media order."""
    budget = windows * asr.DETECT_WINDOW_S
    middle = (regions[0].start + regions[-1].end) / 2 if regions else 0.0
    chosen: list[SpeechRegion] = []
    total = 0.0
    for region in sorted(regions, key=lambda r: abs((r.start + r.end) / 2 - middle)):
        if total >= budget:
            break
        chosen.append(region)
        total += region.end - region.start
    return sorted(chosen, key=lambda r: r.start)


def transcribe(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: asr.TranscribeSettings,
    models: asr.AsrModels,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """`transcribe.transcribe_speech` group by group; one transcript in media time.

    The language is chosen once, before the first group, on a bounded sample of the speech
    (`detection_sample`), then fixed for every group: one file is not transcribed in several
    languages by accident, and detection never holds all the speech at once.
    """
    groups = group_regions(regions)
    if len(groups) <= 1:
        return asr.transcribe_speech(audio, regions, opts, models, on_progress)
    ranking = asr.choose_language(
        audio, detection_sample(regions, opts.detection_windows), opts, models
    )
    if not ranking:  # not reached: several groups hold speech
        return Transcript(language=asr.UNDETERMINED, language_probability=0.0, segments=())

    def in_language(language: str, probability: float) -> Transcript:
        segments: list[AsrSegment] = []
        for n, group in enumerate(groups):
            part = asr.transcribe_in(
                audio,
                group,
                opts,
                models,
                language,
                probability,
                _share(on_progress, n, len(groups)),
            )
            segments.extend(part.segments)
        return Transcript(
            language=language, language_probability=probability, segments=tuple(segments)
        )

    return asr.in_likeliest_language(ranking, in_language)


def _share(
    on_progress: Callable[[float], None] | None, n: int, count: int
) -> Callable[[float], None] | None:
    """Group n's own 0..1 progress as its share of the whole transcription."""
    if on_progress is None:
        return None
    report = on_progress
    return lambda fraction: report((n + fraction) / count)
