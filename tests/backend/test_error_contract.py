"""The error bodies the backend sends are the ones its OpenAPI document declares: 422 only for
request validation (`detail` is a list), every other refusal an `ErrorBody` (`detail` a string)."""

from __future__ import annotations

from typing import Any

from app.api.errors import ErrorBody, ValidationErrorBody
from tests.support.backend import Backend


def _ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


async def test_openapi_declares_error_bodies(sqlite_backend: Backend) -> None:
    doc = (await sqlite_backend.client.get("/openapi.json")).json()
    checked = 0
    for path, ops in doc["paths"].items():
        if not path.startswith(("/api/", "/storage/")):
            continue
        for method, op in ops.items():
            for status, response in op["responses"].items():
                where = f"{method.upper()} {path} {status}"
                if status == "422":
                    assert _ref(response) == "ValidationErrorBody", where
                elif status == "503" and path.endswith("/ml-server/health"):
                    assert _ref(response) == "MLHealth", where
                elif status.startswith(("4", "5")):
                    assert _ref(response) == "ErrorBody", where
                checked += 1
    assert checked > 20
    assert doc["components"]["schemas"]["ErrorBody"]["properties"]["detail"]["type"] == "string"


async def test_domain_error_is_400_error_body(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.post(
        "/api/upload-video/request-process", json={"fileKey": "/etc/passwd"}
    )
    assert r.status_code == 400, r.text
    body = ErrorBody.model_validate(r.json())
    assert body.error == "INVALID_INPUT" and isinstance(body.detail, str)


async def test_validation_error_is_422_list(sqlite_backend: Backend) -> None:
    r = await sqlite_backend.client.post("/api/upload-video/request-process", json={})
    assert r.status_code == 422, r.text
    body = ValidationErrorBody.model_validate(r.json())
    assert body.error == "VALIDATION_ERROR" and body.detail[0].loc[-1] == "fileKey"


async def test_invalid_callback_body_is_422_list(sqlite_backend: Backend) -> None:
    # Validly signed, but not a callback: pydantic's errors in the declared 422 shape.
    r = await sqlite_backend.callback({"job_id": "x", "status": "exploded", "progress": 500})
    assert r.status_code == 422, r.text
    assert isinstance(ValidationErrorBody.model_validate(r.json()).detail, list)


async def test_overlong_key_part_is_400_not_500(sqlite_backend: Backend) -> None:
    # Once the caller's folder exists, a 300-character part used to reach stat() on local
    # storage and fail with ENAMETOOLONG (a 500).
    await sqlite_backend.upload()
    key = "videos/anonymous/" + "a" * 300 + ".mp4"
    r = await sqlite_backend.client.post("/api/upload-video/request-process", json={"fileKey": key})
    assert r.status_code == 400, r.text
    assert ErrorBody.model_validate(r.json()).error == "INVALID_INPUT"
