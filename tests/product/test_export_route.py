"""GET /api/upload-video/result/{job_id}: formats, owner scoping, 404/409/422 (real app, SQLite)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysubs2
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.services.job_service import JobService
from ecg_protocol import JobStatus
from tests.support.caption_parsers import parse_srt, parse_vtt, vtt_voice
from tests.support.results import caption_result, mixed_shape_result


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(ecg_data_dir=tmp_path, model_server_url=None, webhook_secret_key="k")
    with TestClient(create_app(settings)) as c:
        yield c


def add_job(
    client: TestClient, *, owner: str = "anonymous", status: JobStatus, result: Any = None
) -> str:
    """Insert a job row straight through the app's own session factory."""
    job_id = uuid.uuid4()

    async def insert() -> None:
        async with client.app.state.ctx.session_factory() as session:  # type: ignore[attr-defined]
            await JobService(session).create_job(
                job_id=job_id,
                file_key=f"videos/{owner}/x_talk.mp4",
                video_url=None,
                owner=owner,
                status=status,
                progress=100 if status == JobStatus.COMPLETED else 0,
            )
            if result is not None:
                await JobService(session).update_job_status(
                    job_id=job_id, status=JobStatus.PROCESSING, progress=50
                )
                await JobService(session).update_job_status(
                    job_id=job_id, status=JobStatus.COMPLETED, progress=100, result=result
                )

    assert client.portal is not None  # inside the client's lifespan
    client.portal.call(insert)
    return str(job_id)


def completed(client: TestClient, owner: str = "anonymous") -> str:
    return add_job(
        client, owner=owner, status=JobStatus.PENDING, result=mixed_shape_result().to_stored()
    )


def test_srt_vtt_json_of_a_completed_job(client: TestClient) -> None:
    job = completed(client)
    base = f"/api/upload-video/result/{job}"

    srt = client.get(base, params={"format": "srt"})
    assert srt.status_code == 200, srt.text
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert 'filename="a.srt"' in srt.headers["content-disposition"]
    cues = parse_srt(srt.text)
    assert cues[0].lines[0].startswith("[SPEAKER_00] ")

    vtt = client.get(base, params={"format": "vtt", "max_line_length": 20})
    assert vtt.status_code == 200
    assert vtt.headers["content-type"].startswith("text/vtt")
    vcues = parse_vtt(vtt.text)
    assert {vtt_voice(c.lines[0]) for c in vcues} == {"SPEAKER_00", "SPEAKER_01"}
    assert len(vcues) > len(cues)  # the narrower limit made more cues

    body = client.get(base).json()  # json is the default
    assert body["segments"][0]["start"] == 0.5
    assert body == json.loads(client.get(base, params={"format": "json"}).text)


def test_unknown_foreign_and_malformed_ids_are_404(client: TestClient) -> None:
    foreign = completed(client, owner="alice")
    for job in (str(uuid.uuid4()), "not-a-uuid", foreign):
        resp = client.get(f"/api/upload-video/result/{job}", params={"format": "srt"})
        assert resp.status_code == 404, (job, resp.text)
        assert resp.json()["error"] == "JOB_NOT_FOUND"


def test_unfinished_job_is_409(client: TestClient) -> None:
    job = add_job(client, status=JobStatus.PENDING)
    resp = client.get(f"/api/upload-video/result/{job}", params={"format": "vtt"})
    assert resp.status_code == 409
    assert resp.json()["status"] in ("pending", "processing", "failed")


def test_bad_format_and_line_length_are_422(client: TestClient) -> None:
    job = completed(client)
    assert client.get(f"/api/upload-video/result/{job}?format=docx").status_code == 422
    resp = client.get(f"/api/upload-video/result/{job}?format=srt&max_line_length=3")
    assert resp.status_code == 422


def test_text_formats_ass_and_layout_options(client: TestClient) -> None:
    job = add_job(client, status=JobStatus.PENDING, result=caption_result().to_stored())
    base = f"/api/upload-video/result/{job}"
    for fmt, ctype in (
        ("txt", "text/plain"),
        ("tsv", "text/tab-separated-values"),
        ("ass", "text/x-ssa"),
    ):
        resp = client.get(base, params={"format": fmt})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(ctype)
        # The storage key's date and random prefix stay out of the download's name.
        assert f'filename="talk.{fmt}"' in resp.headers["content-disposition"]
    ass = pysubs2.SSAFile.from_string(client.get(base, params={"format": "ass"}).text)
    assert {e.style for e in ass.events} == {"SPEAKER_00", "SPEAKER_01"}
    one_line = parse_srt(client.get(base, params={"format": "srt", "max_line_count": 1}).text)
    assert all(len(c.lines) == 1 for c in one_line)
    karaoke = client.get(base, params={"format": "vtt", "highlight_words": "true"}).text
    assert karaoke.count("<u>") == sum(len(s.words) for s in caption_result().segments)
    bare = client.get(base, params={"format": "srt", "speaker_labels": "false"}).text
    assert "SPEAKER" not in bare and parse_srt(bare)
    assert client.get(base, params={"format": "srt", "max_line_count": 0}).status_code == 422
