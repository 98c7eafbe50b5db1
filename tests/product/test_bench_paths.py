"""bench_paths compares answers, never timings: a clip whose words moved is reported, one that
was only slower is not."""

from __future__ import annotations

from bench.bench_paths import differences, per_clip


def test_only_answers_are_compared() -> None:
    one = {
        "date": "2026-12-07 05:30 UTC",
        "peak_rss_mb": 1250.0,
        "language_right": 23,
        "rows": [
            {"clip": "pl/witaj_swiecie", "language": "yo", "text": "8.", "seconds": 2.8},
            {
                "clip": "en/hello_world",
                "language": "en",
                "text": "Hello world.",
                "seconds": 1.0,
                "stages": {"transcribe": 0.9},
            },
        ],
    }
    other = {
        "date": "2026-12-07 05:40 UTC",
        "peak_rss_mb": 1880.0,
        "language_right": 23,
        "rows": [
            {
                "clip": "pl/witaj_swiecie",
                "language": "pt",
                "text": "o Itaj sué si.",
                "seconds": 3.4,
            },
            {
                "clip": "en/hello_world",
                "language": "en",
                "text": "Hello world.",
                "seconds": 1.1,
                "stages": {"transcribe": 1.0},
            },
        ],
    }
    differ = differences({"oneDNN": per_clip(one), "MKL": per_clip(other)})
    assert list(differ) == ["pl/witaj_swiecie"]
    assert differ["pl/witaj_swiecie"] == {
        "language": {"oneDNN": "yo", "MKL": "pt"},
        "text": {"oneDNN": "8.", "MKL": "o Itaj sué si."},
    }
    assert differences({"a": per_clip(one), "b": per_clip(one), "c": per_clip(one)}) == {}
    # A third configuration that agrees with neither is named with its own value.
    third = per_clip(one) | {"language_right": 24}
    assert differences({"a": per_clip(one), "b": per_clip(one), "c": third}) == {
        "language_right": {"": {"a": 23, "b": 23, "c": 24}}
    }
