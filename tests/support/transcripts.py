"""Comparing transcripts: one edit distance, and the English word error rate built on it.

    word_error_rate("Hello, world!", "hello world")   # 0.0: case and punctuation do not count

`tests.support.languages.error_rate` uses the same distance with its own normalisation (any
script; characters for ja/zh).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9']+")


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (substitution, deletion, insertion)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)]


def normalize_words(text: str) -> list[str]:
    """Lower-cased words of letters a-z, digits and apostrophes; anything else separates."""
    return _WORD.findall(text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalized words."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return edit_distance(ref, hyp) / max(len(ref), 1)
