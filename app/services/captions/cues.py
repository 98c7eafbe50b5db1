"""Cues: a stored AnalysisResult cut into timed captions of bounded lines. Pure, no I/O.

A segment becomes one or more cues. Words are wrapped greedily into lines of at most
`max_line_length` characters and lines are grouped `max_lines` to a cue; each cue takes its
times from its own words, so a long segment is split where the speaker actually is, not at an
even fraction of the segment. A segment without word times falls back to spreading its text
over the segment by character count. A cue never ends a segment with one lone word when the cue
before it can spare one.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from ecg_protocol import AnalysisResult, Segment

DEFAULT_MAX_LINE_LENGTH = 42
DEFAULT_MAX_LINES = 2
MIN_CUE_S = 0.2  # a cue shorter than this cannot be read; it is stretched when there is room

# Line breaks of any kind (CR, LF, VT, FF, NEL U+0085, LINE/PARAGRAPH SEPARATOR U+2028/9) and
# other control characters: inside a word or a name they would end a caption line, so a word
# could inject a cue (SRT, VTT) or a whole line of the script (ASS).
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """`text` with every line break and control character turned into one space."""
    return _BREAKS.sub(" ", text)


@dataclass(frozen=True, slots=True)
class CueWord:
    """A word on a cue, with its own times (for highlighting the word being said)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption on screen: a speaker, a time span and at most `max_lines` lines."""

    start: float
    end: float
    speaker: str
    lines: tuple[str, ...]
    words: tuple[CueWord, ...] = ()
    line_sizes: tuple[int, ...] = ()  # how many of `words` each line holds

    def line_words(self) -> list[tuple[CueWord, ...]]:
        """`words` split into the cue's lines."""
        out: list[tuple[CueWord, ...]] = []
        at = 0
        for size in self.line_sizes:
            out.append(self.words[at : at + size])
            at += size
        return out


def format_timestamp(seconds: float, *, sep: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT, sep ',') or `HH:MM:SS.mmm` (WebVTT, sep '.'); negatives clamp to 0."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _tokens(segment: Segment) -> list[CueWord]:
    """The segment's words with times; interpolated from the text when words are missing."""
    tokens = [
        CueWord(" ".join(one_line(w.word).split()), w.start, max(w.end, w.start))
        for w in segment.words
        if one_line(w.word).strip()
    ]
    if tokens:
        return tokens
    parts = segment.text.split()
    if not parts:
        return []
    span = max(segment.end - segment.start, 0.0)
    total = sum(len(p) + 1 for p in parts)
    out: list[CueWord] = []
    at = 0
    for part in parts:
        start = segment.start + span * at / total
        at += len(part) + 1
        out.append(CueWord(part, start, segment.start + span * at / total))
    return out


def _wrap(
    tokens: list[CueWord], *, max_line_length: int, max_lines: int, label_width: int
) -> list[list[CueWord]] | None:
    """The tokens wrapped greedily into lines, or None when they need too many lines.

    The first line leaves room for a speaker label. A word too long for the label's line starts
    on the next one (the label line stays empty); a word longer than any line stands alone.
    """
    lines: list[list[CueWord]] = []
    current: list[CueWord] = []
    width = 0
    for k, token in enumerate(tokens):
        limit = max_line_length - (label_width if not lines else 0)
        if k == 0 and len(token.text) > limit and max_lines > 1:
            lines.append([])  # the label's line: the word does not fit beside it
            limit = max_line_length
        if current and width + 1 + len(token.text) > limit:
            lines.append(current)
            current, width = [token], len(token.text)
        else:
            width += len(token.text) + (1 if current else 0)
            current.append(token)
        if len(lines) >= max_lines:
            return None
    lines.append(current)
    return lines


def _chunks(tokens: list[CueWord], fits: Callable[[list[CueWord]], bool]) -> list[list[CueWord]]:
    """Consecutive runs of tokens, each as long as fits on one cue.

    A run of one word at the end of a segment (an orphan, on screen for a blink) takes a word
    from the run before it when both still fit.
    """
    runs: list[list[CueWord]] = []
    i = 0
    while i < len(tokens):
        j = i + 1  # a cue holds at least one word, even one too long for a line
        while j < len(tokens) and fits(tokens[i : j + 1]):
            j += 1
        runs.append(tokens[i:j])
        i = j
    if len(runs) >= 2 and len(runs[-1]) == 1 and len(runs[-2]) >= 3:
        prev, last = runs[-2][:-1], [runs[-2][-1], *runs[-1]]
        if fits(prev) and fits(last):
            runs[-2:] = [prev, last]
    return runs


def _segment_cues(
    segment: Segment, *, max_line_length: int, max_lines: int, label_width: int
) -> list[Cue]:
    tokens = _tokens(segment)
    speaker = one_line(segment.speaker.speaker_id).strip()
    wrap = functools.partial(
        _wrap, max_line_length=max_line_length, max_lines=max_lines, label_width=label_width
    )
    cues: list[Cue] = []
    for run in _chunks(tokens, lambda run: wrap(run) is not None):
        groups = wrap(run) or [run]
        start = max(run[0].start, segment.start) if segment.words else run[0].start
        end = max(run[-1].end, start)
        cues.append(
            Cue(
                start=start,
                end=end,
                speaker=speaker,
                lines=tuple(" ".join(t.text for t in g) for g in groups),
                words=tuple(run),
                line_sizes=tuple(len(g) for g in groups),
            )
        )
    return cues


def _tidy(cues: list[Cue]) -> list[Cue]:
    """Sort by time, give every cue a readable positive length, and remove overlaps."""
    ordered = sorted(cues, key=lambda c: (c.start, c.end))
    out: list[Cue] = []
    for k, cue in enumerate(ordered):
        nxt = ordered[k + 1].start if k + 1 < len(ordered) else None
        end = max(cue.end, cue.start + MIN_CUE_S)
        if nxt is not None and end > nxt:
            end = max(nxt, cue.start + 0.001)
        start = cue.start
        if out and start < out[-1].end:
            start = out[-1].end
            end = max(end, start + 0.001)
        out.append(dataclasses.replace(cue, start=start, end=end))
    return out


def build_cues(
    result: AnalysisResult,
    *,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_lines: int = DEFAULT_MAX_LINES,
    label_width: int = 0,
) -> list[Cue]:
    """Cues for the whole result, ordered and non-overlapping.

    `label_width` is the room a speaker label takes on a cue's first line (SRT prints it there).
    """
    if max_line_length < 1 or max_lines < 1:
        raise ValueError("max_line_length and max_lines must be positive")
    cues: list[Cue] = []
    for segment in result.segments:
        cues.extend(
            _segment_cues(
                segment,
                max_line_length=max_line_length,
                max_lines=max_lines,
                label_width=label_width,
            )
        )
    return _tidy(cues)


@dataclass(frozen=True, slots=True)
class CaptionOptions:
    """How captions are laid out (the export route's query parameters)."""

    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    max_lines: int = DEFAULT_MAX_LINES
    speaker_labels: bool = True
    # Karaoke style, as whisperX's --highlight_words: one cue per word said, that word marked.
    highlight_words: bool = False
