"""The models this server transcribes with, for the OpenAI-compatible `GET /v1/models`.

`whisper-1` is always listed: OpenAI's clients send it, and here it names the ML server's
configured model. Beside it come the model names the ML server reports on `GET /languages`
(its ASR model, its English model and the extra models its workers hold), when it answers; a
model given as a folder is listed by the folder's name, so no server path reaches a client.
A request may name any of them (`chosen_model`); none is ever loaded for a request.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import httpx
from pydantic import ValidationError

from app.services.errors import InvalidInput, NotFound
from ecg_protocol import MLServerLanguages

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "whisper-1"
OWNER = "ecg"
# A listing is a quick question: a slow ML server must not hold the caller for ML_API_TIMEOUT.
LIST_TIMEOUT_S = 5.0


class ModelNotFound(NotFound):
    """A model id this server does not hold (OpenAI's code, for its clients)."""

    code = "model_not_found"


class UnknownModel(InvalidInput):
    """A request named a model this server does not hold (400; OpenAI's code)."""

    code = "model_not_found"


def _shown(name: str) -> str:
    return PurePosixPath(name).name if "/" in name else name


async def served_models(
    *, http: httpx.AsyncClient, ml_server_url: str | None, timeout_s: float = LIST_TIMEOUT_S
) -> list[str]:
    """`whisper-1`, then the ML server's model names (none when it does not say them)."""
    said = await _ml_models(http=http, ml_server_url=ml_server_url, timeout_s=timeout_s)
    return [DEFAULT_MODEL, *(name for name in said or [] if name != DEFAULT_MODEL)]


async def _ml_models(
    *, http: httpx.AsyncClient, ml_server_url: str | None, timeout_s: float
) -> list[str] | None:
    """The model names the ML server holds; None when it does not answer."""
    if not ml_server_url:
        return None
    url = f"{ml_server_url.rstrip('/')}/languages"
    try:
        response = await http.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        logger.warning("model list: %s unreachable: %s", url, exc)
        return None
    if response.status_code != 200:
        logger.info("model list: %s answered %s", url, response.status_code)
        return None
    try:
        said = MLServerLanguages.model_validate_json(response.content)
    except ValidationError:
        logger.warning("model list: %s answered no MLServerLanguages", url)
        return None
    models: list[str] = []
    for name in (said.asr_model, said.english_model, *said.models):
        if name and _shown(name) not in models:
            models.append(_shown(name))
    return models


async def chosen_model(
    model: str | None, *, http: httpx.AsyncClient, ml_server_url: str | None
) -> str | None:
    """The ML server's id of the model a request names; None for its configured model (unset,
    empty or `whisper-1`). `UnknownModel` for one it does not hold; when the ML server cannot
    be asked now, the name goes on and the ML server itself refuses one it does not hold."""
    if not model or model == DEFAULT_MODEL:
        return None
    held = await _ml_models(http=http, ml_server_url=ml_server_url, timeout_s=LIST_TIMEOUT_S)
    if held is not None and model not in held:
        raise UnknownModel(
            f"The model '{model}' is not one this server holds "
            f"(GET /v1/models lists them: {', '.join([DEFAULT_MODEL, *held])})",
            param="model",
        )
    return model


async def find_model(model_id: str, *, http: httpx.AsyncClient, ml_server_url: str | None) -> str:
    """`model_id` when this server holds it; `ModelNotFound` otherwise."""
    if model_id in await served_models(http=http, ml_server_url=ml_server_url):
        return model_id
    raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
