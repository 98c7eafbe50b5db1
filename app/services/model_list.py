"""The models this server transcribes with, for the OpenAI-compatible `GET /v1/models`.

`whisper-1` is always listed: OpenAI's clients send it, and here it names the ML server's
configured model. Beside it come the model names the ML server reports on `GET /languages`
(its ASR model and its English model), when it answers; a model given as a folder is listed
by the folder's name, so no server path reaches a client.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

import httpx
from pydantic import ValidationError

from app.services.errors import NotFound
from ecg_protocol import MLServerLanguages

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "whisper-1"
OWNER = "ecg"
# A listing is a quick question: a slow ML server must not hold the caller for ML_API_TIMEOUT.
LIST_TIMEOUT_S = 5.0


class ModelNotFound(NotFound):
    """A model id this server does not hold (OpenAI's code, for its clients)."""

    code = "model_not_found"


def _shown(name: str) -> str:
    return PurePosixPath(name).name if "/" in name else name


async def served_models(
    *, http: httpx.AsyncClient, ml_server_url: str | None, timeout_s: float = LIST_TIMEOUT_S
) -> list[str]:
    """`whisper-1`, then the ML server's model names (none when it does not say them)."""
    models = [DEFAULT_MODEL]
    if not ml_server_url:
        return models
    url = f"{ml_server_url.rstrip('/')}/languages"
    try:
        response = await http.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        logger.warning("model list: %s unreachable: %s", url, exc)
        return models
    if response.status_code != 200:
        logger.info("model list: %s answered %s", url, response.status_code)
        return models
    try:
        said = MLServerLanguages.model_validate_json(response.content)
    except ValidationError:
        logger.warning("model list: %s answered no MLServerLanguages", url)
        return models
    for name in (said.asr_model, said.english_model):
        if name and _shown(name) not in models:
            models.append(_shown(name))
    return models


async def find_model(model_id: str, *, http: httpx.AsyncClient, ml_server_url: str | None) -> str:
    """`model_id` when this server holds it; `ModelNotFound` otherwise."""
    if model_id in await served_models(http=http, ml_server_url=ml_server_url):
        return model_id
    raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
