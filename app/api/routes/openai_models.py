"""OpenAI-compatible `GET /v1/models` and `GET /v1/models/{id}`: the models this server holds."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import ContextDep
from app.api.errors import openai_error_responses
from app.api.routes.openai import OpenAIUser
from app.services.model_list import OWNER, find_model, served_models

router = APIRouter(
    prefix="/v1", tags=["openai-compatible"], responses=openai_error_responses(401, 404)
)


class Model(BaseModel):
    """OpenAI's model object; `created` is 0 (a model's build date is not known here)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = OWNER


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


@router.get("/models")
async def list_models(ctx: ContextDep, user: OpenAIUser) -> ModelList:
    """The models a transcription may name (`whisper-1` is the server's configured model)."""
    names = await served_models(http=ctx.http, ml_server_url=ctx.settings.model_server_url)
    return ModelList(data=[Model(id=name) for name in names])


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, ctx: ContextDep, user: OpenAIUser) -> Model:
    """One model; 404 `model_not_found` for one this server does not hold."""
    name = await find_model(model_id, http=ctx.http, ml_server_url=ctx.settings.model_server_url)
    return Model(id=name)
