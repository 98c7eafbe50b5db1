"""Segments of one reading, and of several readings combined: time order, cutting a region
out, and which of two readings is the surer."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence

from ml_server.pipeline.data import AsrSegment, AsrWord, SpeechRegion

Segments = tuple[AsrSegment, ...]


def in_time_order(segments: Sequence[AsrSegment]) -> list[AsrSegment]:
    """`segments` with every word in time order: a segment that spans another's words is cut
    around them.

    Reads of separate decodes are combined (the second look, a turn read in its own
    language), and one Whisper segment may span several VAD regions whose turns between its
    words were read apart. Sorted by segment start alone, the words would go out of order and
    the result's monotonic word times would pile the later-read words at one instant.
    """
    keyed = sorted(
        ((n, w) for n, seg in enumerate(segments) for w in seg.words),
        key=lambda item: (item[1].start, item[0]),
    )
    out = [
        _piece(segments[n], [w for _, w in run])
        for n, run in itertools.groupby(keyed, key=lambda item: item[0])
    ]
    out += [seg for seg in segments if not seg.words]
    return sorted(out, key=lambda seg: seg.start)


def _piece(seg: AsrSegment, words: list[AsrWord]) -> AsrSegment:
    """`seg` cut down to `words` (itself when they are all of its words)."""
    if len(words) == len(seg.words):
        return seg
    text = "".join(w.word for w in words).strip()
    return dataclasses.replace(
        seg, start=words[0].start, end=words[-1].end, words=tuple(words), text=text
    )


def surer_by_region(
    fast: Sequence[AsrSegment], careful: Sequence[AsrSegment], regions: Sequence[SpeechRegion]
) -> Segments:
    """`fast` with each of `regions` taken from the reading with more confidently read words
    there (`careful` on a tie), in time order."""
    out = list(fast)
    for region in regions:
        mine = within(careful, region)
        if confident_words(mine) >= confident_words(within(fast, region)):
            out = [*without(out, region), *mine]
    return tuple(in_time_order(out))


def confident_words(segments: Sequence[AsrSegment]) -> int:
    return sum(len(seg.words) for seg in segments if seg.confident)


def without(segments: Sequence[AsrSegment], region: SpeechRegion) -> list[AsrSegment]:
    """`segments` less their words whose middle lies in `region` (a segment left without a
    word is dropped; one that keeps some is cut down to them)."""
    return _keep(segments, lambda w: not _inside(w, region))


def within(segments: Sequence[AsrSegment], region: SpeechRegion) -> list[AsrSegment]:
    """`segments` cut down to their words whose middle lies in `region`."""
    return _keep(segments, lambda w: _inside(w, region))


def _inside(word: AsrWord, region: SpeechRegion) -> bool:
    return region.start <= (word.start + word.end) / 2 < region.end


def _keep(segments: Sequence[AsrSegment], keep: Callable[[AsrWord], bool]) -> list[AsrSegment]:
    out: list[AsrSegment] = []
    for seg in segments:
        kept = [w for w in seg.words if keep(w)]
        if len(kept) == len(seg.words):
            out.append(seg)
        elif kept:
            out.append(_piece(seg, kept))
    return out
