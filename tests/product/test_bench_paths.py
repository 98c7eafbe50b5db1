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
    differ = differences(per_clip(one), per_clip(other))
    assert list(differ) == ["pl/witaj_swiecie"]
    assert differ["pl/witaj_swiecie"] == {
        "language": ("yo", "pt"),
        "text": ("8.", "o Itaj sué si."),
    }
    assert differences(per_clip(one), per_clip(one)) == {}
