"""Caption export: line limits, cue splitting on word times, speaker labels, time formats."""

from __future__ import annotations

import itertools
import json

import pytest

from app.services.captions import build_cues, format_timestamp, render, to_json, to_srt, to_vtt
from ecg_protocol import AnalysisResult
from tests.support.caption_parsers import parse_srt, parse_vtt, strip_tags, vtt_voice
from tests.support.results import LONG, mixed_shape_result


def test_format_timestamp_rounds_and_pads() -> None:
    assert format_timestamp(0) == "00:00:00,000"
    assert format_timestamp(3661.2346) == "01:01:01,235"
    assert format_timestamp(59.9996, sep=".") == "00:01:00.000"
    assert format_timestamp(-1.0) == "00:00:00,000"
    assert format_timestamp(36000 + 0.007, sep=".") == "10:00:00.007"


@pytest.mark.parametrize("limit", [20, 32, 42])
def test_every_line_fits_and_cues_have_at_most_two_lines(limit: int) -> None:
    result = mixed_shape_result()
    for text, parse in (
        (to_srt(result, max_line_length=limit), parse_srt),
        (to_vtt(result, max_line_length=limit), parse_vtt),
    ):
        cues = parse(text)
        assert len(cues) > 2
        for cue in cues:
            assert 1 <= len(cue.lines) <= 2
            for line in cue.lines:
                shown = strip_tags(line).replace("&amp;", "&").replace("&lt;", "<")
                shown = shown.replace("&gt;", ">")
                assert len(shown) <= limit, (limit, shown)


def test_long_segment_splits_at_word_times_and_keeps_every_word() -> None:
    result = mixed_shape_result()
    cues = build_cues(result, max_line_length=42)
    first = [c for c in cues if c.speaker == "SPEAKER_00"]
    assert len(first) >= 2
    # Each cue starts exactly where its first word starts (word times, not an even split).
    starts = {round(0.5 + i * 0.4, 3) for i in range(len(LONG))}
    assert all(round(c.start, 3) in starts for c in first)
    words = " ".join(" ".join(c.lines) for c in first).split()
    assert words == LONG
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start


def test_speaker_labels_in_srt_and_voice_tags_in_vtt() -> None:
    result = mixed_shape_result()
    srt = parse_srt(to_srt(result))
    assert srt[0].lines[0].startswith("[SPEAKER_00] ")
    assert srt[-1].lines[0].startswith("[SPEAKER_01] Yes")
    vtt = parse_vtt(to_vtt(result))
    assert vtt_voice(vtt[0].lines[0]) == "SPEAKER_00"
    assert vtt_voice(vtt[-1].lines[0]) == "SPEAKER_01"
    # Markup characters in the text are escaped so they cannot open a tag.
    assert "&lt;really&gt; &amp; truly." in vtt[-1].lines[0]
    plain = to_srt(result, speaker_labels=False)
    assert "[SPEAKER" not in plain


def test_segment_without_words_spreads_text_over_its_time() -> None:
    result = AnalysisResult.model_validate(
        {
            "segments": [
                {
                    "start": 2.0,
                    "end": 6.0,
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": "one two three four five six seven eight nine ten eleven",
                }
            ]
        }
    )
    cues = build_cues(result, max_line_length=16, max_lines=1)
    assert cues[0].start == pytest.approx(2.0)
    assert cues[-1].end == pytest.approx(6.0)
    assert all(len(c.lines[0]) <= 16 for c in cues)


def test_overlapping_segments_become_ordered_cues() -> None:
    result = AnalysisResult.model_validate(
        {
            "segments": [
                {
                    "start": 1.0,
                    "end": 3.0,
                    "speaker": {"speaker_id": "SPEAKER_00"},
                    "text": "a b",
                    "words": [
                        {"word": "a", "start": 1.0, "end": 2.0},
                        {"word": "b", "start": 2.0, "end": 3.0},
                    ],
                },
                {
                    "start": 2.5,
                    "end": 4.0,
                    "speaker": {"speaker_id": "SPEAKER_01"},
                    "text": "c",
                    "words": [{"word": "c", "start": 2.5, "end": 4.0}],
                },
            ]
        }
    )
    parse_srt(to_srt(result))
    parse_vtt(to_vtt(result))
    cues = build_cues(result)
    assert cues[0].end <= cues[1].start


def test_empty_result_and_json_round_trip() -> None:
    empty = AnalysisResult()
    assert to_srt(empty) == ""
    assert to_vtt(empty).startswith("WEBVTT")
    result = mixed_shape_result()
    stored = json.loads(to_json(result))
    assert stored["segments"][0]["start"] == 0.5 and "start_time" not in stored["segments"][0]
    assert AnalysisResult.model_validate(stored) == result
    assert render(result, "json") == to_json(result)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        build_cues(mixed_shape_result(), max_line_length=0)
