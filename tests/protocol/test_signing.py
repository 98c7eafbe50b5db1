"""Known-answer and rejection tests for the signing scheme (docs/protocol.md, *Signing*).

The expected values were computed independently with `openssl dgst -sha256 -hmac`.
"""

from __future__ import annotations

import pytest

from ecg_protocol.signing import (
    SignatureError,
    StreamingVerifier,
    check_headers,
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
        (lambda h, b: ({**h, "X-Signature-256": "sha256=00"}, b), "malformed_signature"),
        (lambda h, b: ({**h, "X-Signature-256": "sha256=" + "0" * 64}, b), "bad_signature"),
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), "malformed_signature"),
        (lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 43 + "="}, b), "bad_signature"),
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


def test_guide_only_header_refused_unless_legacy_allowed() -> None:
    """Strict by default: X-Signature-256 alone has no timestamp, so it could be replayed."""
    headers = {"X-Signature-256": HEX}
    with pytest.raises(SignatureError) as err:
        verify_signature(BODY, headers, SECRET)
    assert err.value.reason == "strict_mode"
    assert verify_signature(BODY, headers, SECRET, strict=False).scheme == "x-signature-256"
    # Allowing the legacy header never weakens a wrong one.
    with pytest.raises(SignatureError) as err:
        verify_signature(BODY, {"X-Signature-256": "sha256=" + "0" * 64}, SECRET, strict=False)
    assert err.value.reason == "bad_signature"


def test_dropping_the_standard_headers_does_not_bypass_the_replay_window() -> None:
    """A captured message an hour old is stale; removing its webhook-* headers is no way round."""
    captured = sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=TS)
    with pytest.raises(SignatureError) as err:
        verify_signature(BODY, captured, SECRET, now=TS + 3600)
    assert err.value.reason == "stale_timestamp"
    stripped = {"X-Signature-256": captured["X-Signature-256"]}
    with pytest.raises(SignatureError) as err:
        verify_signature(BODY, stripped, SECRET, now=TS + 3600)
    assert err.value.reason == "strict_mode"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_signature"),
        ({"webhook-id": "msg_1"}, "incomplete_headers"),
        ({"X-Signature-256": HEX}, "strict_mode"),
        (
            {"webhook-id": "m", "webhook-timestamp": str(TS - 3600), "webhook-signature": "v1,x"},
            "stale_timestamp",
        ),
        (
            {"webhook-id": "m", "webhook-timestamp": "10e99", "webhook-signature": "v1,x"},
            "bad_timestamp",
        ),
    ],
)
def test_check_headers_refuses_without_the_body(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureError) as err:
        check_headers(headers, now=TS)
    assert err.value.reason == reason


def test_check_headers_passes_what_only_the_body_can_settle() -> None:
    # A fresh, complete, well-formed set: whether the signature matches needs the body.
    check_headers(
        {"webhook-id": "m", "webhook-timestamp": str(TS), "webhook-signature": STD}, now=TS
    )
    check_headers({"X-Signature-256": HEX}, strict=False)


@pytest.mark.parametrize(
    "headers",
    [
        {"webhook-id": "m", "webhook-timestamp": str(TS), "webhook-signature": "v1,AAAA"},
        {"webhook-id": "m", "webhook-timestamp": str(TS), "webhook-signature": "v2," + STD[3:]},
        {"webhook-id": "m", "webhook-timestamp": str(TS), "webhook-signature": "v1,!" + STD[4:]},
        {"webhook-id": "m", "webhook-timestamp": str(TS), "webhook-signature": STD,
         "X-Signature-256": "sha256=zz"},
        {"X-Signature-256": "sha256=" + "0" * 63},
        {"X-Signature-256": HEX[7:]},
    ],
    ids=["short-v1", "unknown-version", "not-base64", "bad-hex-beside", "short-hex", "no-prefix"],
)  # fmt: skip
def test_check_headers_refuses_a_malformed_signature(headers: dict[str, str]) -> None:
    """A signature that cannot be an HMAC-SHA256 is refused before the body is read."""
    with pytest.raises(SignatureError) as err:
        check_headers(headers, now=TS, strict=False)
    assert err.value.reason == "malformed_signature"


def test_streaming_verifier_matches_verify_signature() -> None:
    """Fed in pieces, the verifier reaches the same verdict as on the whole body."""
    headers = sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=TS)
    verifier = StreamingVerifier(headers, SECRET, now=TS)
    for k in range(0, len(BODY), 7):
        verifier.update(BODY[k : k + 7])
    assert verifier.verify().msg_id == "msg_1"
    tampered = StreamingVerifier(headers, SECRET, now=TS)
    tampered.update(BODY[:-1])
    with pytest.raises(SignatureError) as err:
        tampered.verify()
    assert err.value.reason == "bad_signature"


def test_empty_secret_never_verifies() -> None:
    with pytest.raises(SignatureError):
        verify_signature(BODY, {"X-Signature-256": hex_signature(BODY, "")}, "")
