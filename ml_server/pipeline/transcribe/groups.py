"""Long media in bounded groups: transcription runs over groups of speech regions of at most
`ASR_GROUP_S` of speech each, cut between regions (in silence), so its working memory depends
on the group, not on the media (faster-whisper computes the log-mel features of its whole
input: about 70 MB per minute of speech; docs/benchmarks.md, "Memory against media duration")."""

from __future__ import annotations

from collections.abc import Callable

from ml_server.pipeline.data import SpeechRegion
from ml_server.pipeline.transcribe.settings import AsrModels, TranscribeSettings

# The batched pipeline reads the first 30 s of each clip (Whisper's window) and drops the rest.
BATCH_CLIP_S = 30.0

# 60 s of speech is ~70 MB of Whisper features, far from a group's fixed cost (one feature
# pass), so grouping costs no measurable speed (bench/bench_memory.py).
ASR_GROUP_S = 60.0


def group_seconds(opts: TranscribeSettings, asr: AsrModels) -> float:
    """Speech per group: ASR_GROUP_S, or a full batch of 30 s clips where decoding is batched.

    The batched pipeline computes features per clip (30 s, 1 MB), not over the whole group, so
    a larger group costs no memory, and a batch of fewer clips than `batch_size` wastes the
    batching (13 min of ami-dev, tiny.en: 60 s groups, 2 to 3 clips a batch, 40.3 s; groups
    of 8 clips, 36.8 s).
    """
    batched = asr.main_batched is not None or asr.english_batched is not None
    return max(ASR_GROUP_S, opts.batch_size * BATCH_CLIP_S) if batched else ASR_GROUP_S


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


def share(
    on_progress: Callable[[float], None] | None, n: int, count: int
) -> Callable[[float], None] | None:
    """Group n's own 0..1 progress as its share of the whole transcription."""
    if on_progress is None:
        return None
    report = on_progress
    return lambda fraction: report((n + fraction) / count)
