"""Caption export: a stored AnalysisResult → SRT, WebVTT, JSON, TXT, TSV or ASS. Pure, no I/O.

`cues` cuts the result into timed captions; `text` writes the text formats; `ass` the styled one.
"""

from __future__ import annotations

from typing import Literal

from app.services.captions.ass import to_ass
from app.services.captions.cues import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_LINES,
    CaptionOptions,
    Cue,
    CueWord,
    build_cues,
    format_timestamp,
)
from app.services.captions.text import to_json, to_srt, to_tsv, to_txt, to_vtt
from ecg_protocol import AnalysisResult

CaptionFormat = Literal["srt", "vtt", "json", "txt", "tsv", "ass"]


def with_speaker_names(result: AnalysisResult, names: dict[str, str]) -> AnalysisResult:
    """The result with the given display names in place of speaker ids (for captions)."""
    if not names:
        return result
    data = result.model_dump()
    for segment in data["segments"]:
        sid = segment["speaker"]["speaker_id"]
        segment["speaker"]["speaker_id"] = names.get(sid, sid)
        for word in segment["words"]:
            if word.get("speaker_id"):
                word["speaker_id"] = names.get(word["speaker_id"], word["speaker_id"])
    return AnalysisResult.model_validate(data)


__all__ = [
    "DEFAULT_MAX_LINES",
    "DEFAULT_MAX_LINE_LENGTH",
    "CaptionFormat",
    "CaptionOptions",
    "Cue",
    "CueWord",
    "build_cues",
    "format_timestamp",
    "render",
    "to_ass",
    "to_json",
    "to_srt",
    "to_tsv",
    "to_txt",
    "to_vtt",
    "with_speaker_names",
]


def render(result: AnalysisResult, fmt: CaptionFormat, opts: CaptionOptions | None = None) -> str:
    """The result in `fmt`."""
    o = opts or CaptionOptions()
    if fmt in ("srt", "vtt"):
        to = to_srt if fmt == "srt" else to_vtt
        return to(
            result,
            max_line_length=o.max_line_length,
            max_lines=o.max_lines,
            speaker_labels=o.speaker_labels,
            highlight_words=o.highlight_words,
        )
    if fmt == "txt":
        return to_txt(result, speaker_labels=o.speaker_labels)
    if fmt == "tsv":
        return to_tsv(result, speaker_labels=o.speaker_labels)
    if fmt == "ass":
        return to_ass(result, o)
    return to_json(result)
