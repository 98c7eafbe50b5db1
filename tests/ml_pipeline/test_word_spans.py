"""Words Whisper gave no length, or stacked on one instant, get a span (word_spans.py)."""

from __future__ import annotations

import pytest

from ml_server.pipeline import word_spans
from ml_server.pipeline.data import AsrSegment, AsrWord, Transcript


def _w(text: str, start: float, end: float) -> AsrWord:
    return AsrWord(word=f" {text}", start=start, end=end, probability=1.0)


def test_words_with_a_length_are_left_as_they_are() -> None:
    words = [_w("one", 0.0, 0.3), _w("two", 0.3, 0.5), _w("three", 1.0, 1.4)]
    assert word_spans.word_spans(words, 2.0) == [(w.start, w.end) for w in words]


def test_a_pile_is_shared_by_characters_at_the_media_pace() -> None:
    # Pace from the words with a length: 0.1 s per character.
    words = [_w("abcd", 0.0, 0.4), _w("is", 1.0, 1.0), _w("very", 1.0, 1.0), _w("xy", 5.0, 5.2)]
    assert word_spans.seconds_per_char(words) == pytest.approx(0.1)
    spans = word_spans.word_spans(words, 6.0)
    assert spans[0] == (0.0, 0.4) and spans[3] == (5.0, 5.2)
    assert spans[1] == (1.0, 1.2) and spans[2] == (1.2, 1.6)


def test_a_pile_never_runs_into_the_next_word() -> None:
    words = [_w("abcd", 0.0, 0.4), _w("mature", 1.0, 1.0), _w("and", 1.0, 1.0), _w("x", 1.3, 1.5)]
    spans = word_spans.word_spans(words, 6.0)
    assert spans[1][0] == 1.0 and spans[2][1] == 1.3
    assert spans[1][1] == spans[2][0] == pytest.approx(1.0 + 0.3 * 6 / 9, abs=1e-3)


def test_a_lone_word_with_no_length_gets_one() -> None:
    words = [_w("abcd", 0.0, 0.4), _w("I", 2.0, 2.0), _w("went", 3.0, 3.4)]
    assert word_spans.word_spans(words, 4.0)[1] == (2.0, 2.1)
    # The last word may run to the end of the media, not past it.
    last = [_w("abcd", 0.0, 0.4), _w("end", 3.95, 3.95)]
    assert word_spans.word_spans(last, 4.0)[1] == (3.95, 4.0)


def test_no_pace_to_measure_takes_the_fallback() -> None:
    words = [_w("ab", 1.0, 1.0), _w("cd", 1.0, 1.0)]
    assert word_spans.seconds_per_char(words) == word_spans.FALLBACK_S_PER_CHAR
    (a, b), (c, d) = word_spans.word_spans(words, 10.0)
    assert a == 1.0 and b == c and d == pytest.approx(1.0 + 4 * word_spans.FALLBACK_S_PER_CHAR)


def test_spread_keeps_segments_and_their_word_counts() -> None:
    first = AsrSegment(0.0, 0.4, "abcd", (_w("abcd", 0.0, 0.4),))
    second = AsrSegment(1.0, 1.0, "is very", (_w("is", 1.0, 1.0), _w("very", 1.0, 1.0)))
    transcript = Transcript(language="en", language_probability=1.0, segments=(first, second))
    out = word_spans.spread(transcript, 5.0)
    assert out.segments[0] is first
    assert [len(s.words) for s in out.segments] == [1, 2]
    assert out.segments[1].end == out.segments[1].words[-1].end == pytest.approx(1.6)
    assert all(w.end > w.start for w in out.words)
    # Nothing to do: the transcript itself comes back.
    assert word_spans.spread(out, 5.0) is out
