"""`ecg_protocol.retry_after_s`: the one reading of Retry-After, for both services."""

from __future__ import annotations

import pytest

from ecg_protocol import retry_after_s


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),  # an HTTP date, 10 s after `now`
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now, never negative
    ],
)
def test_readable_values(value: str, seconds: float) -> None:
    assert retry_after_s(value, now=1445412470.0) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "inf", "nan", "1e9", "٣"])
def test_unreadable_values_are_none(value: str | None) -> None:
    # Only RFC 9110's two forms: no float spelling can make a client wait forever.
    assert retry_after_s(value, now=1445412470.0) is None
