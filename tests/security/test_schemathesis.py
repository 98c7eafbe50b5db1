"""Property-based API tests (schemathesis) against both OpenAPI documents: whatever a client
sends, no 5xx and every documented response matches its schema.

The servers only exist once the session fixture has started them, so the schemas are loaded
inside the tests and each operation is driven with Hypothesis directly (schemathesis's lazy
pytest fixture does not work with pytest 9). Example counts are modest for CI time; set
ECG_SCHEMATHESIS_EXAMPLES=200 for a deeper pass.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core import NotSet
from schemathesis.core.result import Err

from ecg_protocol import ProcessRequest, sign_headers
from tests.support.stack import SECRET, Stack

EXAMPLES = int(os.environ.get("ECG_SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, response_schema_conformance]


def _call_signed(
    case: schemathesis.Case[Any], base_url: str, *, checks: list[Any] | None = None
) -> None:
    """Send the case signed with the shared secret, so fuzzing reaches past the signature."""
    body = b"" if isinstance(case.body, NotSet) else json.dumps(case.body).encode()
    headers = {
        **{k: str(v) for k, v in (case.headers or {}).items()},
        "Content-Type": "application/json",
        **sign_headers(body, SECRET),
    }
    response = httpx.request(
        case.method,
        base_url + case.formatted_path,
        content=body,
        headers=headers,
        params=case.query or None,
        timeout=60,
    )
    case.validate_response(response, checks=checks or CHECKS)


def _fuzz(base_url: str) -> list[str]:
    """Run every operation of the API at `base_url`; return one line per failing operation."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"unusable operation in the OpenAPI document: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert operations > 0, f"no operations in {base_url}/openapi.json"
    return failures


def test_backend_api_no_5xx_and_schema_conformance(sec_stack: Stack) -> None:
    failures = _fuzz(sec_stack.backend_url)
    assert not failures, "\n\n".join(failures)


def test_ml_server_api_no_5xx_and_schema_conformance(sec_stack: Stack) -> None:
    failures = _fuzz(sec_stack.ml_url)
    assert not failures, "\n\n".join(failures)


def _process_openapi() -> dict[str, Any]:
    """An OpenAPI document for `POST /process` from the wire schema itself: the route reads the
    raw body (to verify the signature first), so its own document declares no request body."""
    schema = ProcessRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "ML server /process", "version": "1"},
        "paths": {
            "/process": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ProcessRequest"}
                            }
                        },
                    },
                    "responses": {"default": {"description": "any"}},
                }
            }
        },
        "components": {"schemas": {"ProcessRequest": schema, **defs}},
    }


def test_ml_server_signed_process_never_5xx(sec_stack: Stack) -> None:
    # Validly signed fuzz, so it reaches the body validation and the URL guard.
    schema = schemathesis.openapi.from_dict(_process_openapi())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES * 2,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case[Any]) -> None:
            _call_signed(case, sec_stack.ml_url, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
