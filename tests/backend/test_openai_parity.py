"""OpenAI parity beyond transcription itself, driven by the official `openai` client: the model
list, `stream=true` as OpenAI's server-sent events (or a 400 where it cannot stream), and every
`/v1` error in OpenAI's shape with OpenAI's status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.backend import BASE_URL, Backend, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.openai_calls import (
    MEDIA,
    WAIT_S,
    client_for,
    completed,
    dispatched,
    finish,
)


@pytest.fixture
async def api(sqlite_url: str, tmp_path: Path, fake_ml: FakeMLServer) -> AsyncIterator[Backend]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        model_server_url=fake_ml.url,
        jwt_secret=None,
        sync_wait_timeout_s=WAIT_S,
    )
    async for b in open_backend(settings):
        yield b


def _openai_error(body: Any) -> dict[str, Any]:
    """The `error` object, checked for OpenAI's four keys."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


async def test_models_list_and_retrieve(api: Backend) -> None:
    client = client_for(api)
    listed = await client.models.list()
    ids = [m.id for m in listed.data]
    # whisper-1 (what OpenAI clients send) and the ML server's own names; a folder by its name.
    assert ids == ["whisper-1", "bundled:base", "tiny.en", "small"]
    assert {(m.object, m.owned_by) for m in listed.data} == {("model", "ecg")}
    one = await client.models.retrieve("bundled:base")
    assert one.id == "bundled:base" and one.object == "model"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("large-v9")
    assert missing.value.code == "model_not_found"
    error = _openai_error(missing.value.response.json())
    assert error["type"] == "invalid_request_error" and error["param"] == "model"


async def test_models_without_the_ml_server_list_whisper_1(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, model_server_url=f"http://127.0.0.1:{free_port()}", jwt_secret=None
    )
    async for backend in open_backend(settings):
        listed = await client_for(backend).models.list()
        assert [m.id for m in listed.data] == ["whisper-1"]


async def test_a_request_picks_a_held_model(api: Backend, fake_ml: FakeMLServer) -> None:
    """`model` reaches the ML request's options (whisper-1: none, the configured model); one
    the server does not hold is a 400 `model_not_found` naming `model`, and nothing starts."""
    client = client_for(api)
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.audio.transcriptions.create(model="large-v9", file=MEDIA)
    assert unknown.value.status_code == 400 and unknown.value.code == "model_not_found"
    assert unknown.value.param == "model"
    assert "GET /v1/models lists them: whisper-1, bundled:base, tiny.en, small" in str(
        unknown.value.message
    )
    assert not fake_ml.accepted

    chosen = asyncio.create_task(client.audio.transcriptions.create(model="small", file=MEDIA))
    job_id = await finish(api, fake_ml, 1, **completed())
    assert (await chosen).text
    assert fake_ml.jobs[job_id].request.options.model == "small"

    default = asyncio.create_task(client.audio.translations.create(model="whisper-1", file=MEDIA))
    job_id = await finish(api, fake_ml, 2, **completed())
    assert (await default).text
    assert fake_ml.jobs[job_id].request.options.model is None


async def test_request_process_takes_a_held_model(api: Backend, fake_ml: FakeMLServer) -> None:
    key = await api.upload()
    refused = await api.client.post(
        "/api/upload-video/request-process", json={"fileKey": key, "model": "large-v9"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "model_not_found" and "large-v9" in refused.text
    job_id = await api.start_job(model="tiny.en")
    await dispatched(fake_ml, 1)
    assert fake_ml.jobs[job_id].request.options.model == "tiny.en"


async def _streamed(api: Backend) -> list[Any]:
    """Every event of a `stream=true` transcription through the openai client."""
    client = client_for(api)
    stream = await client.audio.transcriptions.create(model="whisper-1", file=MEDIA, stream=True)
    return [event async for event in stream]


async def test_stream_answers_openai_events(api: Backend, fake_ml: FakeMLServer) -> None:
    call = asyncio.create_task(_streamed(api))
    await finish(api, fake_ml, 1, **completed())
    got = await call
    assert [e.type for e in got[:-1]] == ["transcript.text.delta"] * (len(got) - 1)
    assert len(got) > 2 and got[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in got[:-1]) == got[-1].text
    assert got[-1].text.startswith("so the thing about") and "LOUD" in got[-1].text


async def test_stream_of_a_failed_job_raises(api: Backend, fake_ml: FakeMLServer) -> None:
    call = asyncio.create_task(_streamed(api))
    await finish(
        api, fake_ml, 1, status="failed", error_code="NO_AUDIO_TRACK", error_message="no audio"
    )
    with pytest.raises(openai.APIError) as failed:
        await call
    assert "no audio" in failed.value.message
    assert isinstance(failed.value.body, dict) and failed.value.body["code"] == "NO_AUDIO_TRACK"


async def test_stream_is_never_silently_ignored(api: Backend, fake_ml: FakeMLServer) -> None:
    client = client_for(api)
    with pytest.raises(openai.BadRequestError) as captions:
        await client.audio.transcriptions.create(
            model="whisper-1",
            file=MEDIA,
            stream=True,
            response_format="srt",  # type: ignore[call-overload]
        )
    assert captions.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as translated:
        await client.audio.translations.create(
            model="whisper-1", file=MEDIA, extra_body={"stream": "true"}
        )
    assert translated.value.param == "stream"
    assert not fake_ml.accepted


async def test_v1_errors_in_openai_shape_and_statuses(api: Backend, fake_ml: FakeMLServer) -> None:
    client = client_for(api)
    with pytest.raises(openai.BadRequestError) as bad_format:
        await client.audio.transcriptions.create(
            model="whisper-1",
            file=MEDIA,
            response_format="docx",  # type: ignore[arg-type]
        )
    error = _openai_error(bad_format.value.response.json())
    assert error["type"] == "invalid_request_error" and error["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as wrong_type:  # OpenAI: 400, not 415
        await client.audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"hello", "text/plain")
        )
    assert _openai_error(wrong_type.value.response.json())["type"] == "invalid_request_error"
    raw = api.client
    too_big = await raw.post(
        "/v1/audio/transcriptions",
        content=b"\x00" * 1_200_000,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert too_big.status_code == 413
    assert _openai_error(too_big.json())["code"] == "REQUEST_TOO_LARGE"
    for method, path, status in [
        ("GET", "/v1/nothing", 404),
        ("POST", "/v1/models", 405),
    ]:
        r = await raw.request(method, path)
        assert r.status_code == status, (path, r.text)
        assert _openai_error(r.json())["code"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    assert not fake_ml.accepted


async def test_no_http_error_code_anywhere(sqlite_backend: Backend) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sqlite_backend.app), base_url=BASE_URL
    ) as raw:
        r = await raw.delete("/api/upload-video/generate-url")
    assert r.status_code == 405
    assert r.json()["error"] == "METHOD_NOT_ALLOWED"
