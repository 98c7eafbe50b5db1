"""The one definition of the wire format shared by the ECG backend and the ML server.

Both services import the request, callback, result and job-record models, the error codes, the
error body and the signing scheme from here, so a change to the protocol is a change in exactly
one place.
"""

from ecg_protocol.errors import ErrorBody, ErrorCode, RefusalCode, retry_after_s
from ecg_protocol.health import LanguageName, MLServerHealth, MLServerLanguages
from ecg_protocol.jobs import CancelAccepted, JobRecord, MLJobStatus, ProcessAccepted
from ecg_protocol.schemas import (
    SCHEMA_VERSION,
    AnalysisResult,
    CallbackPayload,
    CallbackStatus,
    Emotion,
    JobStatus,
    Metadata,
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
    StreamingVerifier,
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
    "CancelAccepted",
    "Emotion",
    "ErrorBody",
    "ErrorCode",
    "JobRecord",
    "JobStatus",
    "LanguageName",
    "MLJobStatus",
    "MLServerHealth",
    "MLServerLanguages",
    "Metadata",
    "ProcessAccepted",
    "ProcessOptions",
    "ProcessRequest",
    "RefusalCode",
    "Segment",
    "SignatureError",
    "Speaker",
    "Stage",
    "StreamingVerifier",
    "VerifiedSignature",
    "Word",
    "check_headers",
    "normalize_timestamp_fields",
    "retry_after_s",
    "sign_headers",
    "verify_signature",
]
