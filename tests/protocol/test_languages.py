"""`ecg_protocol.languages`, the one home of a request's `language`: the shape the backend's
request model checks (`REQUEST_PATTERN`) admits every spelling `canonical` writes, and refuses
what is not a code list before any code is looked up."""

from __future__ import annotations

import re

import pytest

from ecg_protocol.languages import (
    AUTO,
    REQUEST_PATTERN,
    WHISPER_LANGUAGES,
    LanguageError,
    canonical,
)

SHAPE = re.compile(REQUEST_PATTERN)


def test_every_canonical_spelling_has_the_request_shape() -> None:
    for value in [AUTO, *WHISPER_LANGUAGES, "ko,en", "en-US", " zh_Hans , ja "]:
        assert SHAPE.match(value), value
        assert SHAPE.match(canonical(value)), value


@pytest.mark.parametrize("value", ["e n;drop", "", "k", "ko,,en", "ko;en", "ko,"])
def test_malformed_values_are_refused_by_shape(value: str) -> None:
    assert not SHAPE.match(value)


def test_a_well_shaped_unknown_code_is_left_to_canonical() -> None:
    assert SHAPE.match("xx,ko")
    with pytest.raises(LanguageError, match="unknown language code 'xx'"):
        canonical("xx,ko")
