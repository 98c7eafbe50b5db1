"""Text caption formats: SRT, WebVTT (with karaoke highlighting), TXT, TSV and JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from app.services.captions.cues import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    CaptionOptions,
    Cue,
    build_cues,
    format_timestamp,
    one_line,
)
from ecg_protocol import AnalysisResult, Segment


def _srt_label(speaker: str) -> str:
    return f"[{one_line(speaker).strip()}] "


def _highlight_spans(cue: Cue) -> Iterator[tuple[float, float, int | None]]:
    """(start, end, index of the word being said or None) covering the cue without overlap."""
    t = cue.start
    for k, word in enumerate(cue.words):
        ws = min(max(word.start, t), cue.end)
        we = min(max(word.end, ws), cue.end)
        if ws > t:
            yield t, ws, None
        if we > ws:
            yield ws, we, k
        t = max(t, we)
    if t < cue.end or not cue.words:
        yield t, cue.end, None


def _marked_lines(cue: Cue, said: int | None, esc: Callable[[str], str]) -> list[str]:
    """The cue's lines with word `said` underlined (`<u>`), each word escaped by `esc`."""
    if said is None or not cue.line_sizes:
        return [esc(line) for line in cue.lines]
    out: list[str] = []
    k = 0
    for words in cue.line_words():
        parts = []
        for word in words:
            text = esc(word.text)
            parts.append(f"<u>{text}</u>" if k == said else text)
            k += 1
        out.append(" ".join(parts))
    return out


def _timed_lines(
    cues: list[Cue], opts: CaptionOptions, esc: Callable[[str], str]
) -> Iterator[tuple[float, float, Cue, list[str]]]:
    """Every cue (or, highlighting, every word span of every cue) with its lines."""
    for cue in cues:
        if not opts.highlight_words:
            yield cue.start, cue.end, cue, _marked_lines(cue, None, esc)
            continue
        for start, end, said in _highlight_spans(cue):
            yield start, end, cue, _marked_lines(cue, said, esc)


def _same(text: str) -> str:
    return text


def to_srt(
    result: AnalysisResult,
    *,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    max_lines: int = DEFAULT_MAX_LINES,
    speaker_labels: bool = True,
    highlight_words: bool = False,
) -> str:
    """SubRip text; each cue's first line starts with `[SPEAKER_00] `, counted in the limit."""
    opts = CaptionOptions(max_line_length, max_lines, speaker_labels, highlight_words)
    label_width = 0
    if speaker_labels:
        label_width = max(
            (len(_srt_label(s.speaker.speaker_id)) for s in result.segments), default=0
        )
    cues = build_cues(
        result, max_line_length=max_line_length, max_lines=max_lines, label_width=label_width
    )
    blocks: list[str] = []
    for n, (start, end, cue, lines) in enumerate(_timed_lines(cues, opts, _same), start=1):
        if speaker_labels:
            lines[0] = (_srt_label(cue.speaker) + lines[0]).rstrip()
        times = f"{format_timestamp(start)} --> {format_timestamp(end)}"
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
    highlight_words: bool = False,
) -> str:
    """WebVTT; the speaker rides in a `<v SPEAKER_00>` voice tag, which takes no screen room."""
    opts = CaptionOptions(max_line_length, max_lines, speaker_labels, highlight_words)
    cues = build_cues(result, max_line_length=max_line_length, max_lines=max_lines)
    blocks = ["WEBVTT"]
    for n, (start, end, cue, lines) in enumerate(_timed_lines(cues, opts, _vtt_escape), start=1):
        if speaker_labels:
            # The voice's name is escaped like cue text: `>` would end the tag, `-->` a cue.
            lines[0] = f"<v {_vtt_escape(cue.speaker)}>{lines[0]}"
        times = f"{format_timestamp(start, sep='.')} --> {format_timestamp(end, sep='.')}"
        blocks.append("\n".join([str(n), times, *lines]))
    return "\n\n".join(blocks) + "\n"


_LINE_BREAKS = re.compile(r"\s+")


def _segment_text(segment: Segment) -> str:
    text = segment.text.strip() or " ".join(w.word.strip() for w in segment.words)
    return _LINE_BREAKS.sub(" ", one_line(text)).strip()


def to_txt(result: AnalysisResult, *, speaker_labels: bool = True) -> str:
    """Plain text, one segment a line (`[SPEAKER_00] ` first when labels are on)."""
    lines = []
    for segment in result.segments:
        text = _segment_text(segment)
        if not text:
            continue
        label = _srt_label(segment.speaker.speaker_id) if speaker_labels else ""
        lines.append(label + text)
    return "\n".join(lines) + "\n" if lines else ""


def to_tsv(result: AnalysisResult, *, speaker_labels: bool = True) -> str:
    """Tab-separated segments: `start`, `end` in integer milliseconds (whisperX's tsv), `text`."""
    header = ["start", "end", *(["speaker"] if speaker_labels else []), "text"]
    rows = ["\t".join(header)]
    for segment in result.segments:
        text = _segment_text(segment)
        if not text:
            continue
        cells = [str(round(segment.start * 1000)), str(round(segment.end * 1000))]
        if speaker_labels:
            cells.append(one_line(segment.speaker.speaker_id).strip())
        rows.append("\t".join([*cells, text]))
    return "\n".join(rows) + "\n"


def to_json(result: AnalysisResult) -> str:
    """The stored result (segments with `start`/`end`), pretty-printed."""
    return json.dumps(result.to_stored(), ensure_ascii=False, indent=2) + "\n"
