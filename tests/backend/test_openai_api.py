"""`POST /v1/audio/transcriptions|translations` driven by the official `openai` client, against
the real backend (SQLite and PostgreSQL, local storage) with the fake ML server behind it: the
call waits for the job, every response format, our extras in verbose_json, options that reach
the ML server, failures, and the wait running out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from tests.support.backend import Backend, make_settings, open_backend
from tests.support.fake_ml import FakeMLServer
from tests.support.openai_calls import (
    MEDIA,
    WAIT_S,
    client_for,
    completed,
    finish,
)
from tests.support.results import caption_result


@pytest.fixture
async def api(db_url: str, tmp_path: Path, fake_ml: FakeMLServer) -> AsyncIterator[Backend]:
    settings = make_settings(
        tmp_path, db_url, model_server_url=fake_ml.url, jwt_secret=None, sync_wait_timeout_s=WAIT_S
    )
    async for b in open_backend(settings):
        yield b


async def test_verbose_json_with_words_speakers_and_prosody(
    api: Backend, fake_ml: FakeMLServer
) -> None:
    client = client_for(api)
    call = asyncio.create_task(
        client.audio.transcriptions.create(
            model="whisper-1",
            file=MEDIA,
            language="en",
            prompt="ECG, diarization",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    )
    job_id = await finish(api, fake_ml, 1, **completed())
    out = await call
    assert out.language == "english" and out.duration == 30.0
    assert out.text.startswith("so the thing about")
    assert out.words is not None and out.segments is not None
    assert len(out.words) == sum(len(s.words) for s in caption_result().segments)
    loud = next(w for w in out.words if w.word == "LOUD")
    extras = loud.model_extra or {}
    assert extras["speaker"] == "SPEAKER_01" and extras["volume_db"] == -3.0
    assert (out.segments[0].model_extra or {})["speaker"] == "SPEAKER_00"
    # A turn read in another language says so; the others carry what the result had.
    assert [(s.model_extra or {})["language"] for s in out.segments[:2]] == [None, "french"]
    # The request reached the ML server as an ordinary job with the client's options.
    sent = fake_ml.jobs[job_id].request
    assert sent.language == "en" and sent.options.prompt == "ECG, diarization"
    status = await api.status(job_id)
    assert status.json()["status"] == "completed"


async def test_text_srt_vtt_and_json(api: Backend, fake_ml: FakeMLServer) -> None:
    client = client_for(api)
    for n, fmt in enumerate(["json", "text", "srt", "vtt"], start=1):
        call = asyncio.create_task(
            client.audio.transcriptions.create(model="whisper-1", file=MEDIA, response_format=fmt)  # type: ignore[call-overload]
        )
        await finish(api, fake_ml, n, **completed())
        out = await call
        text = out if isinstance(out, str) else out.text
        assert "every cue has to follow" in text, fmt
        if fmt == "srt":
            assert " --> " in text and "SPEAKER" not in text  # OpenAI's captions name nobody
        if fmt == "vtt":
            assert text.startswith("WEBVTT")


async def test_translation_asks_the_ml_server_to_translate(
    api: Backend, fake_ml: FakeMLServer
) -> None:
    client = client_for(api)
    call = asyncio.create_task(
        client.audio.translations.create(model="whisper-1", file=MEDIA, response_format="text")
    )
    job_id = await finish(api, fake_ml, 1, **completed())
    assert "LOUD" in await call
    assert fake_ml.jobs[job_id].request.options.task == "translate"


async def test_failed_job_is_an_error_the_client_raises(
    api: Backend, fake_ml: FakeMLServer
) -> None:
    client = client_for(api)
    bad = asyncio.create_task(client.audio.transcriptions.create(model="whisper-1", file=MEDIA))
    await finish(
        api, fake_ml, 1, status="failed", error_code="NO_AUDIO_TRACK", error_message="no audio"
    )
    with pytest.raises(openai.BadRequestError) as refused:
        await bad
    assert refused.value.code == "NO_AUDIO_TRACK"  # OpenAI's error shape: error.code
    assert refused.value.message.endswith("no audio")
    crashed = asyncio.create_task(client.audio.transcriptions.create(model="whisper-1", file=MEDIA))
    await finish(
        api, fake_ml, 2, status="failed", error_code="PROCESSING_ERROR", error_message="boom"
    )
    with pytest.raises(openai.InternalServerError) as failed:
        await crashed
    assert failed.value.response.status_code == 502
    assert failed.value.response.headers["x-should-retry"] == "false"


async def test_refusals_before_any_job(api: Backend, fake_ml: FakeMLServer) -> None:
    client = client_for(api)
    with pytest.raises(openai.APIStatusError) as wrong_type:
        await client.audio.transcriptions.create(
            model="whisper-1", file=("notes.txt", b"hello", "text/plain")
        )
    assert wrong_type.value.status_code == 400  # OpenAI answers 400 for a file it cannot read
    with pytest.raises(openai.APIStatusError) as too_big:
        await client.audio.transcriptions.create(
            model="whisper-1", file=("big.mp4", b"\x00" * 1_000_001, "video/mp4")
        )
    assert too_big.value.status_code == 413
    with pytest.raises(openai.APIStatusError) as far_too_big:  # refused before it is read
        await client.audio.transcriptions.create(
            model="whisper-1", file=("big.mp4", b"\x00" * 1_200_000, "video/mp4")
        )
    assert far_too_big.value.status_code == 413
    with pytest.raises(openai.BadRequestError) as bad_format:  # OpenAI: 400, not 422
        await client.audio.transcriptions.create(
            model="whisper-1",
            file=MEDIA,
            response_format="docx",  # type: ignore[arg-type]
        )
    assert "response_format" in bad_format.value.message
    assert not fake_ml.accepted


async def test_wait_runs_out_with_the_job_id_to_poll(
    db_url: str, tmp_path: Path, fake_ml: FakeMLServer
) -> None:
    settings = make_settings(
        tmp_path, db_url, model_server_url=fake_ml.url, jwt_secret=None, sync_wait_timeout_s=0.5
    )
    async for backend in open_backend(settings):
        client = client_for(backend)
        with pytest.raises(openai.APIStatusError) as slow:
            await client.audio.transcriptions.create(model="whisper-1", file=MEDIA)
        assert slow.value.status_code == 504
        job_id = slow.value.body["job_id"]  # type: ignore[index]  # the `error` object's
        assert (await backend.status(job_id)).json()["status"] in ("pending", "processing")
