"""Caption export: a stored AnalysisResult → SRT, WebVTT or JSON. Pure functions, no I/O.

A segment becomes one or more cues. Words are wrapped greedily into lines of at most
`max_line_length` characters and lines are grouped `max_lines` to a cue; each cue takes its
times from its own words, so a long segment is split where the speaker actually is, not at an
even fraction of the segment. A segment without word times falls back to spreading its text
over the segment by character count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ecg_protocol import AnalysisResult, Segment

CaptionFormat = Literal["srt", "vtt", "json"]
DEFAULT_MAX_LINE_LENGTH = 42
DEFAULT_MAX_LINES = 2
MIN_CUE_S = 0.2  # a cue shorter than this cannot be read; it is stretched when there is room

__all__ = [
    "DEFAULT_MAX_LINES",
    "DEFAULT_MAX_LINE_LENGTH",
    "CaptionFormat",
    "Cue",
    "build_cues",
    "format_timestamp",
    "render",
    "to_json",
    "to_srt",
    "to_vtt",
]


@dataclass(frozen=True, slots=True)
class Cue:
    """One caption on screen: a speaker, a time span and at most `max_lines` lines."""

    start: float
    end: float
    speaker: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    start: float
    end: float


def format_timestamp(seconds: float, *, sep: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT, sep ',') or `HH:MM:SS.mmm` (WebVTT, sep '.'); negatives clamp to 0."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def _tokens(segment: Segment) -> list[_Token]:
    """The segment's words with times; interpolated from the text when words are missing."""
    tokens = [
        _Token(w.word.strip(), w.start, max(w.end, w.start))
        for w in segment.words
        if w.word.strip()
    ]
    if tokens:
        return tokens
    parts = segment.text.split()
    if not parts:
        return []
    span = max(segment.end - segment.start, 0.0)
    total = sum(len(p) + 1 for p in parts)
    out: list[_Token] = []
    at = 0
    for part in parts:
        start = segment.start + span * at / total
        at += len(part) + 1
        out.append(_Token(part, start, segment.start + span * at / total))
    return out


def _segment_cues(
    segment: Segment, *, max_line_length: int, max_lines: int, label_width: int
) -> list[Cue]:
    tokens = _tokens(segment)
    speaker = segment.speaker.speaker_id
    cues: list[Cue] = []
    i = 0
    while i < len(tokens):
        # Fill one cue: wrap greedily and stop when the next word would need one line too many.
        lines: list[str] = []
        current = ""
        j = i
        while j < len(tokens):
            word = tokens[j].text
            limit = max_line_length - (label_width if not lines else 0)
            if not current and not lines and len(word) > limit and max_lines > 1:
                lines.append("")  # the label's line: the word does not fit beside it
                continue
            candidate = f"{current} {word}" if current else word
            if current and len(candidate) > limit:
                if len(lines) + 1 >= max_lines:
                    break
                lines.append(current)
                current = word
            else:
                current = candidate
            j += 1
        lines.append(current)
        chunk = tokens[i:j]
        start = max(chunk[0].start, segment.start) if segment.words else chunk[0].start
        end = max(chunk[-1].end, start)
        cues.append(Cue(start=start, end=end, speaker=speaker, lines=tuple(lines)))
        i = j
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
        out.append(Cue(start=start, end=end, speaker=cue.speaker, lines=cue.lines))
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


def _srt_label(speaker: str) -> str:
    return f"[{speaker}] "


def to_srt(
    result: AnalysisResult,
    *,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_lines: int = DEFAULT_MAX_LINES,
    speaker_labels: bool = True,
) -> str:
    """SubRip text; each cue's first line starts with `[SPEAKER_00] `, counted in the limit."""
    label_width = 0
    if speaker_labels:
        label_width = max(
            (len(_srt_label(s.speaker.speaker_id)) for s in result.segments), default=0
        )
    cues = build_cues(
        result, max_line_length=max_line_length, max_lines=max_lines, label_width=label_width
    )
    blocks: list[str] = []
    for n, cue in enumerate(cues, start=1):
        lines = list(cue.lines)
        if speaker_labels:
            lines[0] = (_srt_label(cue.speaker) + lines[0]).rstrip()
        times = f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}"
        blocks.append("\n".join([str(n), times, *lines]))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(
    result: AnalysisResult,
    *,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_lines: int = DEFAULT_MAX_LINES,
    speaker_labels: bool = True,
) -> str:
    """WebVTT; the speaker rides in a `<v SPEAKER_00>` voice tag, which takes no screen room."""
    cues = build_cues(result, max_line_length=max_line_length, max_lines=max_lines)
    blocks = ["WEBVTT"]
    for n, cue in enumerate(cues, start=1):
        lines = [_vtt_escape(line) for line in cue.lines]
        if speaker_labels:
            lines[0] = f"<v {cue.speaker}>{lines[0]}"
        times = f"{format_timestamp(cue.start, sep='.')} --> {format_timestamp(cue.end, sep='.')}"
        blocks.append("\n".join([str(n), times, *lines]))
    return "\n\n".join(blocks) + "\n"


def to_json(result: AnalysisResult) -> str:
    """The stored result (segments with `start`/`end`), pretty-printed."""
    return json.dumps(result.to_stored(), ensure_ascii=False, indent=2) + "\n"


def render(
    result: AnalysisResult,
    fmt: CaptionFormat,
    *,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_lines: int = DEFAULT_MAX_LINES,
) -> str:
    """The result in `fmt`."""
    if fmt == "srt":
        return to_srt(result, max_line_length=max_line_length, max_lines=max_lines)
    if fmt == "vtt":
        return to_vtt(result, max_line_length=max_line_length, max_lines=max_lines)
    return to_json(result)
