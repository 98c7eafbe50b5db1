"""Request signing used in both directions (docs/protocol.md, *Signing*).

Every signed request carries the guide's (docs/guide.md) `X-Signature-256: sha256=<hex>` over
the raw body and the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64>` over `"{id}.{timestamp}.{body}"`). The receiver verifies raw
bytes before parsing, compares in constant time and refuses timestamps outside the window.
Strict by default: a message with only `X-Signature-256` (no timestamp, so replayable) is
accepted only when the receiver opts in with `strict=False`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

SIGNATURE_HEADER = "X-Signature-256"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_S = 300
# The receiver's store keys seen ids in 128 characters; a longer one cannot be a sender's.
MAX_ID_LENGTH = 128
_HEX_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
_DIGEST_BYTES = hashlib.sha256().digest_size


class SignatureError(Exception):
    """The request is not validly signed; `reason` is a short stable code for logs and clients."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a verified request proved: its `webhook-id` and timestamp (None for guide-only)."""

    msg_id: str | None
    timestamp: int | None
    scheme: str  # "standard-webhooks" or "x-signature-256"


def _key(secret: str) -> bytes:
    # A Standard Webhooks secret (`whsec_<base64>`) keys the HMAC with its decoded bytes, so
    # their SDKs verify our messages; any other secret is used as its UTF-8 bytes.
    if secret.startswith(WHSEC_PREFIX):
        try:
            return base64.b64decode(secret[len(WHSEC_PREFIX) :], validate=True)
        except ValueError:
            pass  # not base64 after all: an ordinary secret that happens to start so
    return secret.encode("utf-8")


WHSEC_PREFIX = "whsec_"


def hex_signature(body: bytes, secret: str) -> str:
    """The guide's `X-Signature-256` value: `sha256=<hex HMAC-SHA256(secret, body)>`."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def standard_signature(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    """The Standard Webhooks value: `v1,<base64 HMAC-SHA256(secret, "{id}.{ts}.{body}")>`."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_headers(
    body: bytes,
    secret: str,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Headers that sign `body`. Pass the same `msg_id` on every retry of one message."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        SIGNATURE_HEADER: hex_signature(body, secret),
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(ts),
        WEBHOOK_SIGNATURE_HEADER: standard_signature(body, secret, msg_id, ts),
    }


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def check_headers(
    headers: Mapping[str, str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    strict: bool = True,
    now: float | None = None,
) -> None:
    """Refuse what the headers alone show to be unacceptable, before the body is read.

    Missing or incomplete signature headers, a malformed or stale timestamp, a signature that
    cannot be an HMAC-SHA256 (no `v1,<base64 of 32 bytes>` candidate; `X-Signature-256` not
    `sha256=<64 hex>`), an over-long id, and (when `strict`) a request signed only with the
    guide's `X-Signature-256` raise `SignatureError`; a receiver calls this first so such a
    request never costs it the body.
    """
    msg_id = _get(headers, ID_HEADER)
    ts_raw = _get(headers, TIMESTAMP_HEADER)
    sig_std = _get(headers, WEBHOOK_SIGNATURE_HEADER)
    sig_hex = _get(headers, SIGNATURE_HEADER)
    if msg_id and ts_raw and sig_std:
        _timestamp_within(ts_raw, tolerance_s, now)
        if len(msg_id) > MAX_ID_LENGTH:
            raise SignatureError("bad_id", f"webhook-id is over {MAX_ID_LENGTH} characters")
        if not _standard_candidates(sig_std):
            raise SignatureError(
                "malformed_signature", "webhook-signature holds no 'v1,<base64 HMAC-SHA256>'"
            )
        _check_hex_format(sig_hex)
        return
    if msg_id or ts_raw or sig_std:
        raise SignatureError(
            "incomplete_headers",
            "webhook-id, webhook-timestamp and webhook-signature must be sent together",
        )
    if sig_hex is None:
        raise SignatureError("missing_signature", "the request is not signed")
    if strict:
        # X-Signature-256 alone has no timestamp: a captured message could be replayed forever.
        raise SignatureError(
            "strict_mode",
            "the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) "
            "are required; X-Signature-256 alone is accepted only where legacy signatures "
            "are allowed",
        )
    _check_hex_format(sig_hex)


def _check_hex_format(sig_hex: str | None) -> None:
    if sig_hex is not None and not _HEX_SIGNATURE.fullmatch(sig_hex.strip()):
        raise SignatureError(
            "malformed_signature", f"{SIGNATURE_HEADER} is not 'sha256=<64 hex digits>'"
        )


def _standard_candidates(sig_std: str) -> list[str]:
    """The well-formed `v1,<base64 of a SHA-256 digest>` entries of a (rotation) list."""
    out: list[str] = []
    for candidate in sig_std.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue  # another scheme (v1a, asymmetric): not ours to check
        try:
            digest = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(digest) == _DIGEST_BYTES:
            out.append(candidate)
    return out


def _timestamp_within(ts_raw: str, tolerance_s: int, now: float | None) -> int:
    try:
        ts = int(ts_raw)
    except ValueError as exc:
        raise SignatureError("bad_timestamp", "webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    try:
        stale = abs(current - ts) > tolerance_s
    except OverflowError:  # too large for a float: far outside any window
        stale = True
    if stale:
        raise SignatureError(
            "stale_timestamp", f"webhook-timestamp is outside the ±{tolerance_s}s window"
        )
    return ts


class StreamingVerifier:
    """Verify a body while it arrives, without holding it: headers checked on creation
    (`check_headers`), each chunk fed to the HMACs by `update`, the verdict from `verify`.

        verifier = StreamingVerifier(request.headers, secret)   # SignatureError: refuse now
        async for chunk in stream: verifier.update(chunk)
        verified = verifier.verify()                              # SignatureError: refuse
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        secret: str,
        *,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        strict: bool = True,
        now: float | None = None,
    ) -> None:
        if not secret:
            raise SignatureError("no_secret", "no signing secret is configured")
        check_headers(headers, tolerance_s=tolerance_s, strict=strict, now=now)
        key = _key(secret)
        self._sig_hex = _get(headers, SIGNATURE_HEADER)
        self._hex = hmac.new(key, digestmod=hashlib.sha256) if self._sig_hex is not None else None
        self._msg_id = _get(headers, ID_HEADER)
        ts_raw = _get(headers, TIMESTAMP_HEADER)
        sig_std = _get(headers, WEBHOOK_SIGNATURE_HEADER)
        self._std: hmac.HMAC | None = None
        self._candidates: list[str] = []
        self._ts: int | None = None
        if self._msg_id and ts_raw and sig_std:
            self._ts = int(ts_raw)  # checked by check_headers
            self._std = hmac.new(key, f"{self._msg_id}.{self._ts}.".encode(), hashlib.sha256)
            self._candidates = _standard_candidates(sig_std)

    def update(self, chunk: bytes) -> None:
        """Feed the next piece of the raw body."""
        if self._hex is not None:
            self._hex.update(chunk)
        if self._std is not None:
            self._std.update(chunk)

    def verify(self) -> VerifiedSignature:
        """What the whole body proved; `SignatureError` unless every signature sent matches."""
        if self._hex is not None and self._sig_hex is not None:
            expected_hex = ("sha256=" + self._hex.hexdigest()).encode()
            if not hmac.compare_digest(expected_hex, self._sig_hex.strip().encode()):
                raise SignatureError("bad_signature", f"{SIGNATURE_HEADER} does not match the body")
        if self._std is not None:
            expected = ("v1," + base64.b64encode(self._std.digest()).decode("ascii")).encode()
            # The header may list several signatures (key rotation): any one matching will do.
            matched = False
            for candidate in self._candidates:
                matched |= hmac.compare_digest(expected, candidate.encode())
            if not matched:
                raise SignatureError("bad_signature", "webhook-signature does not match the body")
            return VerifiedSignature(
                msg_id=self._msg_id, timestamp=self._ts, scheme="standard-webhooks"
            )
        # Only the guide's header, matching, and the caller allowed it (`strict=False`).
        return VerifiedSignature(msg_id=None, timestamp=None, scheme="x-signature-256")


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    strict: bool = True,
    now: float | None = None,
) -> VerifiedSignature:
    """Check `body` against its signature headers; raise `SignatureError` unless valid.

    Strict by default: the Standard Webhooks headers are required, and they are authoritative
    (the guide's header, if also present, must match too). `strict=False` also accepts a request
    signed only with the guide's `X-Signature-256`, for a guide-era peer; that is weaker: it
    carries no timestamp and no id, so it has no replay protection.
    """
    verifier = StreamingVerifier(headers, secret, tolerance_s=tolerance_s, strict=strict, now=now)
    verifier.update(body)
    return verifier.verify()
