"""Small strict SRT and WebVTT parsers: any deviation from the format raises ValueError."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

_SRT_TIME = re.compile(r"^(\d{2}):([0-5]\d):([0-5]\d),(\d{3})$")
_VTT_TIME = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")


@dataclass(frozen=True)
class ParsedCue:
    index: int
    start: float
    end: float
    lines: list[str]


def _seconds(stamp: str, pattern: re.Pattern[str]) -> float:
    m = pattern.match(stamp)
    if not m:
        raise ValueError(f"bad timestamp {stamp!r}")
    h, mi, s, ms = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def _times(line: str, pattern: re.Pattern[str]) -> tuple[float, float]:
    parts = line.split(" --> ")
    if len(parts) != 2:
        raise ValueError(f"bad timing line {line!r}")
    start, end = _seconds(parts[0], pattern), _seconds(parts[1].split(" ")[0], pattern)
    if not end > start:
        raise ValueError(f"cue ends before it starts: {line!r}")
    return start, end


def _check_order(cues: list[ParsedCue]) -> None:
    for prev, cur in itertools.pairwise(cues):
        if cur.index != prev.index + 1:
            raise ValueError(f"numbering jumps from {prev.index} to {cur.index}")
        if cur.start < prev.start:
            raise ValueError(f"cue {cur.index} starts before cue {prev.index}")


def parse_srt(text: str) -> list[ParsedCue]:
    """Blocks of: number, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, one or more text lines."""
    if not text.endswith("\n"):
        raise ValueError("SRT must end with a newline")
    cues: list[ParsedCue] = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        if len(lines) < 3:
            raise ValueError(f"short block {block!r}")
        if not lines[0].isdigit():
            raise ValueError(f"bad cue number {lines[0]!r}")
        start, end = _times(lines[1], _SRT_TIME)
        if any(not line.strip() for line in lines[2:]):
            raise ValueError(f"empty text line in {block!r}")
        cues.append(ParsedCue(int(lines[0]), start, end, lines[2:]))
    if not cues or cues[0].index != 1:
        raise ValueError("numbering must start at 1")
    _check_order(cues)
    return cues


def parse_vtt(text: str) -> list[ParsedCue]:
    """`WEBVTT` header, then blocks of: optional identifier, timing line, text lines."""
    if not text.startswith("WEBVTT"):
        raise ValueError("missing WEBVTT header")
    blocks = text.strip("\n").split("\n\n")
    header = blocks[0].split("\n")[0]
    if header not in ("WEBVTT",) and not header.startswith(("WEBVTT ", "WEBVTT\t")):
        raise ValueError(f"bad header {header!r}")
    cues: list[ParsedCue] = []
    for block in blocks[1:]:
        lines = block.split("\n")
        if lines[0].startswith("NOTE"):
            continue
        if "-->" not in lines[0]:
            if "-->" in lines[0] or len(lines) < 3 or not lines[0].isdigit():
                raise ValueError(f"bad cue identifier in {block!r}")
            ident, lines = int(lines[0]), lines[1:]
        else:
            ident = len(cues) + 1
        start, end = _times(lines[0], _VTT_TIME)
        if len(lines) < 2 or any(not line.strip() for line in lines[1:]):
            raise ValueError(f"missing text in {block!r}")
        cues.append(ParsedCue(ident, start, end, lines[1:]))
    _check_order(cues)
    return cues


_VOICE = re.compile(r"^<v ([^>]+)>")


def vtt_voice(line: str) -> str | None:
    """The speaker of a `<v SPEAKER_00>` voice tag at the start of a cue line."""
    m = _VOICE.match(line)
    return m.group(1) if m else None


def strip_tags(line: str) -> str:
    return re.sub(r"<[^>]+>", "", line)
