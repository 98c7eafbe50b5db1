"""The one definition of the wire format shared by the ECG backend and the ML server.

Both services import the request, callback and result schemas, the error codes and the
signing scheme from here, so a change to the protocol is a change in exactly one place.
"""

from ecg_protocol.errors import ErrorCode
from ecg_protocol.schemas import (
    SCHEMA_VERSION,
    AnalysisResult,
    CallbackPayload,
    CallbackStatus,
    Emotion,
    JobStatus,
    Metadata,
    ProcessAccepted,
    ProcessOptions,
    ProcessRequest,
    Segment,
    Speaker,
    Stage,
    Word,
    normalize_timestamp_fields,
)
from ecg_protocol.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    VerifiedSignature,
    check_headers,
    sign_headers,
    verify_signature,
)

__all__ = [
    "SCHEMA_VERSION",
    "SIGNATURE_HEADER",
    "AnalysisResult",
    "CallbackPayload",
    "CallbackStatus",
    "Emotion",
    "ErrorCode",
    "JobStatus",
    "Metadata",
    "ProcessAccepted",
    "ProcessOptions",
    "ProcessRequest",
    "Segment",
    "SignatureError",
    "Speaker",
    "Stage",
    "VerifiedSignature",
    "Word",
    "check_headers",
    "normalize_timestamp_fields",
    "sign_headers",
    "verify_signature",
]
