"""Known-answer and rejection tests for the signing scheme (§5).

The expected values were computed independently with `openssl dgst -sha256 -hmac`.
"""

from __future__ import annotations

import pytest

from ecg_protocol.signing import (
    SignatureError,
    hex_signature,
    sign_headers,
    standard_signature,
    verify_signature,
)

SECRET = "test-secret"
BODY = b'{"job_id":"j1","status":"processing","progress":10}'
TS = 1_700_000_000
HEX = "sha256=f358903bf6a2e56ee2112128d49e21ec1fde116ec182200675878e8555bc4d71"
STD = "v1,dUicCkWroUrVVAguSBCblkekiQ6fPXTlmCTY+5oLjZo="


def test_known_answers() -> None:
    assert hex_signature(BODY, SECRET) == HEX
    assert standard_signature(BODY, SECRET, "msg_1", TS) == STD
    headers = sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=TS)
    assert headers == {
        "X-Signature-256": HEX,
        "webhook-id": "msg_1",
        "webhook-timestamp": str(TS),
        "webhook-signature": STD,
    }


def test_round_trip_and_lowercase_headers() -> None:
    headers = {k.lower(): v for k, v in sign_headers(BODY, SECRET, timestamp=TS).items()}
    verified = verify_signature(BODY, headers, SECRET, now=TS + 10)
    assert verified.scheme == "standard-webhooks"
    assert verified.timestamp == TS
    assert verified.msg_id and verified.msg_id.startswith("msg_")


def test_rotation_list_accepts_any_matching_signature() -> None:
    headers = sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=TS)
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    assert verify_signature(BODY, headers, SECRET, now=TS).msg_id == "msg_1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "bad_signature"),
        (lambda h, b: ({**h, "X-Signature-256": "sha256=00"}, b), "bad_signature"),
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), "bad_signature"),
        (lambda h, b: ({**h, "webhook-timestamp": str(TS - 301)}, b), "stale_timestamp"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "bad_timestamp"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "incomplete_headers"),
        (lambda h, b: ({}, b), "missing_signature"),
    ],
)
def test_rejections(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    headers, body = mutate(sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=TS), BODY)
    with pytest.raises(SignatureError) as err:
        verify_signature(body, headers, SECRET, now=TS)
    assert err.value.reason == reason


def test_wrong_secret_is_rejected() -> None:
    headers = sign_headers(BODY, SECRET, timestamp=TS)
    with pytest.raises(SignatureError):
        verify_signature(BODY, headers, "other-secret", now=TS)


def test_guide_only_header_accepted_unless_strict() -> None:
    headers = {"X-Signature-256": HEX}
    assert verify_signature(BODY, headers, SECRET).scheme == "x-signature-256"
    with pytest.raises(SignatureError) as err:
        verify_signature(BODY, headers, SECRET, strict=True)
    assert err.value.reason == "strict_mode"


def test_empty_secret_never_verifies() -> None:
    with pytest.raises(SignatureError):
        verify_signature(BODY, {"X-Signature-256": hex_signature(BODY, "")}, "")
