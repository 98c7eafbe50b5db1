"""Every caption format parsed back by an independent parser (srt, webvtt-py, pysubs2), karaoke
highlighting, line counts, orphan words, labels off, and ASS styling from speaker and loudness."""

from __future__ import annotations

import csv
import io
import itertools
import re

import pysubs2
import pytest
import srt
import webvtt

from app.services.captions import CaptionOptions, build_cues, render, to_srt, to_vtt
from app.services.captions.ass import BASE_FONT_SIZE, PALETTE
from ecg_protocol import AnalysisResult
from tests.support.results import caption_result

_TAG = re.compile(r"</?u>|<v [^>]+>|</v>|\{[^}]*\}")  # our markup only: "<really>" is a word


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _words(result: AnalysisResult) -> list[str]:
    return [w.word.strip() for s in result.segments for w in s.words]


def _shown_words(texts: list[str]) -> list[str]:
    """Words a viewer reads, markup and speaker labels removed."""
    out: list[str] = []
    for text in texts:
        plain = _TAG.sub("", text.replace("\\N", " "))
        out.extend(t for t in plain.split() if not re.fullmatch(r"\[SPEAKER_\d+\]", t))
    return out


def test_srt_vtt_ass_parse_back_with_every_word_in_order() -> None:
    result = caption_result()
    words = _words(result)
    srt_cues = list(srt.parse(render(result, "srt")))
    assert _shown_words([c.content for c in srt_cues]) == words
    vtt = webvtt.WebVTT.from_string(render(result, "vtt"))
    assert _shown_words([_unescape(c.raw_text) for c in vtt.captions]) == words
    ass = pysubs2.SSAFile.from_string(render(result, "ass"))
    assert _shown_words([e.text for e in ass.events]) == words
    for a, b in itertools.pairwise(srt_cues):
        assert a.end <= b.start


def test_txt_and_tsv_hold_each_segment() -> None:
    result = caption_result()
    txt = render(result, "txt").splitlines()
    assert len(txt) == len(result.segments)
    assert txt[0].startswith("[SPEAKER_00] so the thing")
    rows = list(csv.DictReader(io.StringIO(render(result, "tsv")), delimiter="\t"))
    assert [r["speaker"] for r in rows] == [s.speaker.speaker_id for s in result.segments]
    assert int(rows[1]["start"]) == round(result.segments[1].start * 1000)
    assert rows[1]["text"] == result.segments[1].text
    plain = render(result, "tsv", CaptionOptions(speaker_labels=False))
    assert "speaker" not in plain.splitlines()[0] and "SPEAKER" not in plain


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_highlight_words_marks_the_word_being_said(fmt: str) -> None:
    result = caption_result()
    text = render(result, fmt, CaptionOptions(highlight_words=True))
    if fmt == "srt":
        cues = [
            (c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(text)
        ]
    else:
        captions = webvtt.WebVTT.from_string(text).captions
        cues = [(_seconds(c.start), _seconds(c.end), c.raw_text) for c in captions]
    marked = [(s, e, re.findall(r"<u>(.*?)</u>", t)) for s, e, t in cues]
    said = [(s, e, m[0]) for s, e, m in marked if m]
    assert all(len(m) <= 1 for _, _, m in marked)
    # One marked cue per word, in order, each inside that word's own time span.
    by_start = {round(w.start, 3): w for seg in result.segments for w in seg.words}
    assert len(said) == len(by_start)
    for start, end, word in said:
        w = by_start[round(start, 3)]
        assert _unescape(word) == w.word
        assert end <= w.end + 1e-3
    for a, b in itertools.pairwise(cues):
        assert a[1] <= b[0] + 1e-3


def test_max_line_count_and_no_orphan_word() -> None:
    result = caption_result()
    for count in (1, 3):
        cues = build_cues(result, max_line_length=20, max_lines=count)
        assert max(len(c.lines) for c in cues) <= count
    assert any(len(c.lines) == 3 for c in build_cues(result, max_line_length=20, max_lines=3))
    # Greedy filling would leave "eeee" alone on the last cue; it takes "dddd" along instead.
    lone = AnalysisResult.model_validate(
        {
            "segments": [
                {
                    "start": 0.0,
                    "end": 2.5,
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": "aaaa bbbb cccc dddd eeee",
                    "words": [
                        {"word": t, "start": i * 0.5, "end": i * 0.5 + 0.4}
                        for i, t in enumerate(["aaaa", "bbbb", "cccc", "dddd", "eeee"])
                    ],
                }
            ]
        }
    )
    cues = build_cues(lone, max_line_length=20, max_lines=1)
    assert [c.lines for c in cues] == [("aaaa bbbb cccc",), ("dddd eeee",)]


def test_speaker_labels_off_everywhere() -> None:
    result = caption_result()
    off = CaptionOptions(speaker_labels=False)
    for fmt in ("srt", "vtt", "txt", "tsv"):
        assert "SPEAKER_0" not in render(result, fmt, off), fmt
    ass = pysubs2.SSAFile.from_string(render(result, "ass", off))
    assert {e.style for e in ass.events} == {"Default"}
    assert not any(e.name for e in ass.events)
    assert "[SPEAKER_00]" in to_srt(result) and "<v SPEAKER_01>" in to_vtt(result)


def test_ass_colours_speakers_and_sizes_words_by_loudness() -> None:
    result = caption_result()
    ass = pysubs2.SSAFile.from_string(render(result, "ass", CaptionOptions(highlight_words=True)))
    for n, speaker in enumerate(["SPEAKER_00", "SPEAKER_01"]):
        color = ass.styles[speaker].primarycolor
        assert (color.r, color.g, color.b) == PALETTE[n]
    sizes: dict[str, int] = {}
    for event in ass.events:
        for size, word in re.findall(r"\\fs(\d+)\}([^{\s]+)", event.text):
            sizes[word] = int(size)
        # Karaoke durations never run past the event.
        total_cs = sum(int(k) for k in re.findall(r"\\k(\d+)", event.text))
        assert total_cs * 10 <= event.end - event.start + 10
    loud, quiet = sizes["LOUD"], sizes["quiet"]
    assert loud > BASE_FONT_SIZE > quiet
