"""Every word gets a span: words Whisper gave no length, or stacked on one instant, are spread
over the room before the next word.

Whisper's word timestamps come from a cross-attention alignment that can put several words on
one frame or give a word no length, and the aligner keeps starts that Whisper put together.
Such a word has no audio for its volume and pitch, cannot be highlighted in a caption, and
makes the result's "every word lies in its segment" hold only at one instant. How often it
happens on real speech: docs/pipeline.md, "Word spans". It runs after diarization, whose
settings were calibrated on the aligner's times.

A group of words sharing a start (or one word with no length) is given the length the media's
own talkers take for that many characters (the median seconds per character over the words
that do have a length), within the room before the next word, and that length is shared by
character count. Words with a length of their own are left as they are.
"""

from __future__ import annotations

import dataclasses
import statistics

from ml_server.pipeline.data import AsrSegment, AsrWord, Transcript

# Starts closer than this are one instant (times are rounded to the millisecond).
_SAME_START_S = 0.001
# Seconds per character when no word in the media has a length to measure the pace on:
# conversational English runs ≈ 14 characters a second (≈ 2.5 words of 5–6 characters).
FALLBACK_S_PER_CHAR = 0.07


def spread(transcript: Transcript, duration: float) -> Transcript:
    """`transcript` with every word given a length where there is room for one (itself when
    every word has one)."""
    it = iter(word_spans(transcript.words, duration))
    segments = tuple(_respanned(seg, [next(it) for _ in seg.words]) for seg in transcript.segments)
    if all(new is old for new, old in zip(segments, transcript.segments, strict=True)):
        return transcript
    return dataclasses.replace(transcript, segments=segments)


def _respanned(seg: AsrSegment, spans: list[tuple[float, float]]) -> AsrSegment:
    """`seg` with its words at `spans` (itself when none moved)."""
    if spans == [(w.start, w.end) for w in seg.words]:
        return seg
    words = tuple(
        dataclasses.replace(w, start=a, end=b) for w, (a, b) in zip(seg.words, spans, strict=True)
    )
    return dataclasses.replace(seg, end=max(seg.end, words[-1].end), words=words)


def word_spans(words: list[AsrWord], duration: float) -> list[tuple[float, float]]:
    """(start, end) of each word (in time order); see the module doc."""
    spans = [(w.start, w.end) for w in words]
    pace = seconds_per_char(words)
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words) and 0 <= words[j].start - words[i].start < _SAME_START_S:
            j += 1
        group = words[i:j]
        if len(group) > 1 or group[0].end <= group[0].start:
            start = group[0].start
            room = max(start, words[j].start if j < len(words) else duration)
            chars = [_chars(w) for w in group]
            end = min(room, max(max(w.end for w in group), start + pace * sum(chars)))
            spans[i:j] = _shared(start, end, chars)
        i = j
    return spans


def seconds_per_char(words: list[AsrWord]) -> float:
    """The media's pace: median seconds per character over the words that have a length."""
    paces = [(w.end - w.start) / _chars(w) for w in words if w.end > w.start]
    return statistics.median(paces) if paces else FALLBACK_S_PER_CHAR


def _chars(word: AsrWord) -> int:
    return max(1, len(word.word.strip()))


def _shared(start: float, end: float, chars: list[int]) -> list[tuple[float, float]]:
    """[start, end] cut in consecutive pieces in proportion to `chars`."""
    total = sum(chars)
    out: list[tuple[float, float]] = []
    at = 0
    for c in chars:
        a = start + (end - start) * at / total
        at += c
        b = start + (end - start) * at / total
        out.append((round(a, 3), round(b, 3)))
    return out
