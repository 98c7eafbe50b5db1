"""Every HTTP message between the backend and the ML server is an `ecg_protocol` model on both
sides, checked on the source (ast), so a new dict-key read of wire data fails here.

The messages, and who builds / who reads each:

| message | built by | read by |
|---|---|---|
| `POST /process` | backend `MLClient.process`: `ProcessRequest` | ML `process`: `ProcessRequest` |
| its 202 / refusal | ML: `ProcessAccepted` / `ErrorBody` | backend: the same two |
| callbacks (progress/result/failure) | ML: `CallbackPayload` | backend: `CallbackPayload` |
| `GET /jobs/{id}` | ML: `JobRecord` | backend `parse_job_state`: `JobRecord` |
| `DELETE /jobs/{id}` | ML: `CancelAccepted` / `ErrorBody` | backend `MLClient.cancel`: the same |
| `GET /health` | ML: `MLServerHealth` | backend `read_health`, `ecg up`: `MLServerHealth` |
| `GET /languages` | ML: `MLServerLanguages` | backend `served_models`: `MLServerLanguages` |

The backend's answer to a callback is read by the ML server only for its status code and its
`Retry-After` header (`ecg_protocol.retry_after_s`), never for its body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ecg_protocol

ROOT = Path(__file__).resolve().parents[2]

# The backend and CLI modules that send to or read from the ML server.
BACKEND_WIRE_MODULES = (
    "app/services/ml_client.py",
    "app/services/dispatch.py",
    "app/services/reconcile.py",
    "app/api/routes/health.py",
    "app/api/routes/jobs.py",
    "app/api/routes/webhook.py",
    "app/services/model_list.py",
    "ecg_cli/up.py",
)


def _tree(rel: str) -> ast.Module:
    return ast.parse((ROOT / rel).read_text(encoding="utf-8"), filename=rel)


def _model_calls(tree: ast.AST, method: str) -> set[str]:
    """Names `X` in every `X.<method>(...)` call in `tree`."""
    return {
        node.func.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and isinstance(node.func.value, ast.Name)
    }


def _constructed(tree: ast.AST) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def _response_models(tree: ast.AST) -> dict[str, str]:
    """`"METHOD path"` → the `response_model=` name of each ML route decorator."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
                continue
            path = deco.args[0] if deco.args else None
            model = next((k.value for k in deco.keywords if k.arg == "response_model"), None)
            if isinstance(path, ast.Constant) and isinstance(model, ast.Name):
                out[f"{deco.func.attr.upper()} {path.value}"] = model.id
    return out


def test_the_models_are_ecg_protocol_exports() -> None:
    for name in (
        "ProcessRequest",
        "ProcessAccepted",
        "ErrorBody",
        "CallbackPayload",
        "JobRecord",
        "CancelAccepted",
        "MLServerHealth",
        "MLServerLanguages",
    ):
        assert name in ecg_protocol.__all__, name


def test_backend_client_reads_every_ml_answer_through_a_model() -> None:
    tree = _tree("app/services/ml_client.py")
    read = _model_calls(tree, "model_validate_json")
    assert {"ProcessAccepted", "ErrorBody", "JobRecord", "CancelAccepted", "MLServerHealth"} <= read
    # The request it sends is the model's own JSON.
    sent = ast.unparse(tree)
    assert "request.model_dump_json(" in sent


def test_ml_server_answers_are_declared_models() -> None:
    tree = _tree("ml_server/api.py")
    assert _response_models(tree) == {
        "POST /process": "ProcessAccepted",
        "GET /health": "MLServerHealth",
        "GET /languages": "MLServerLanguages",
        "GET /jobs/{job_id}": "JobRecord",
        "DELETE /jobs/{job_id}": "CancelAccepted",
    }
    built = _constructed(tree)
    assert {"ProcessAccepted", "CancelAccepted", "MLServerHealth"} <= built
    assert "ProcessRequest" in _model_calls(tree, "model_validate")
    # Every refusal goes through the one `ErrorBody`-shaped helper.
    errors = _tree("ml_server/errors.py")
    assert "ErrorBody" in ast.unparse(errors)


def test_callbacks_are_built_and_read_as_callback_payload() -> None:
    assert "CallbackPayload" in _constructed(_tree("ml_server/callbacks.py"))
    assert "CallbackPayload" in _model_calls(
        _tree("app/services/webhook.py"), "model_validate_json"
    )


def test_ecg_up_reads_health_through_the_model() -> None:
    assert "MLServerHealth" in _model_calls(_tree("ecg_cli/up.py"), "model_validate_json")


@pytest.mark.parametrize("rel", BACKEND_WIRE_MODULES)
def test_no_untyped_json_reading_of_ml_answers(rel: str) -> None:
    """No `response.json()` / `json.loads` in the modules that talk to the ML server: wire data
    is read by a model's `model_validate_json`, so a field is never read by a dict key."""
    bad = [
        f"{rel}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(_tree(rel))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and (
            node.func.attr == "json"
            or (
                node.func.attr == "loads"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "json"
            )
        )
    ]
    assert bad == []


def test_no_route_sends_its_own_request_to_the_ml_server() -> None:
    """Routes reach the ML server only through `MLClient` (one signing, one error mapping):
    neither imports httpx nor touches the shared HTTP client `ctx.http`."""
    for rel in ("app/api/routes/health.py", "app/api/routes/jobs.py"):
        tree = _tree(rel)
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert "httpx" not in imported, rel
        http_uses = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "http"
        ]
        assert http_uses == [], rel
