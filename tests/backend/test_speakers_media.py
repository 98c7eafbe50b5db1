"""Speaker names kept with a job and used by caption exports; the media redirect a reloaded
page plays from (real app on SQLite and PostgreSQL, local storage)."""

from __future__ import annotations

from tests.support.backend import Backend, auth, new_user
from tests.support.results import caption_result


async def _completed(backend: Backend, headers: dict[str, str]) -> str:
    job_id = await backend.start_job(headers=headers)
    done = {"job_id": job_id, "status": "completed", "progress": 100}
    resp = await backend.callback({**done, "result": caption_result().to_stored()})
    assert resp.status_code == 200, resp.text
    return job_id


async def test_names_are_kept_and_shown_in_captions(backend: Backend) -> None:
    owner = auth(new_user())
    job_id = await _completed(backend, owner)
    base = f"/api/jobs/{job_id}/speakers"
    got = (await backend.client.get(base, headers=owner)).json()
    assert got["speakers"] == ["SPEAKER_00", "SPEAKER_01"] and got["names"] == {}
    put = await backend.client.put(base, json={"names": {"SPEAKER_00": " Alice "}}, headers=owner)
    assert put.status_code == 200, put.text
    assert put.json()["names"] == {"SPEAKER_00": "Alice"}
    more = {"names": {"SPEAKER_01": "Bob Lee"}}
    assert (await backend.client.put(base, json=more, headers=owner)).json()["names"] == {
        "SPEAKER_00": "Alice",
        "SPEAKER_01": "Bob Lee",
    }
    result = f"/api/upload-video/result/{job_id}"
    srt = (await backend.client.get(result, params={"format": "srt"}, headers=owner)).text
    assert "[Alice] so the thing" in srt and "[Bob Lee]" in srt and "SPEAKER_0" not in srt
    vtt = (await backend.client.get(result, params={"format": "vtt"}, headers=owner)).text
    assert "<v Bob Lee>" in vtt
    raw = (await backend.client.get(result, params={"format": "json"}, headers=owner)).json()
    assert raw["segments"][0]["speaker"]["speaker_id"] == "SPEAKER_00"  # ids stay stable
    # Clearing a name brings the id back.
    clear = {"names": {"SPEAKER_00": ""}}
    assert (await backend.client.put(base, json=clear, headers=owner)).json()["names"] == {
        "SPEAKER_01": "Bob Lee"
    }


async def test_bad_names_unknown_speakers_open_and_foreign_jobs(backend: Backend) -> None:
    owner, other = auth(new_user()), auth(new_user())
    job_id = await _completed(backend, owner)
    base = f"/api/jobs/{job_id}/speakers"
    unknown = await backend.client.put(base, json={"names": {"SPEAKER_07": "X"}}, headers=owner)
    assert unknown.status_code == 400 and "SPEAKER_07" in unknown.json()["detail"]
    newline = await backend.client.put(base, json={"names": {"SPEAKER_00": "a\nb"}}, headers=owner)
    assert newline.status_code == 422
    assert (await backend.client.get(base, headers=other)).status_code == 404
    pending = await backend.start_job(headers=owner)
    early = await backend.client.put(
        f"/api/jobs/{pending}/speakers", json={"names": {"SPEAKER_00": "A"}}, headers=owner
    )
    assert early.status_code == 409


async def test_media_redirects_to_the_uploaded_bytes(backend: Backend) -> None:
    owner = auth(new_user())
    job_id = await _completed(backend, owner)
    resp = await backend.client.get(f"/api/jobs/{job_id}/media", headers=owner)
    assert resp.status_code == 307
    video = await backend.client.get(resp.headers["location"])
    assert video.status_code == 200 and video.content == b"\x00" * 1000
    other = await backend.client.get(f"/api/jobs/{job_id}/media", headers=auth(new_user()))
    assert other.status_code == 404
