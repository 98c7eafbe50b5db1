"""Status polling (shape, ownership, cache), job list/delete, /health and /metrics."""

from __future__ import annotations

import uuid

from ecg_protocol import JobStatus
from ecg_protocol.public import JobStatusAnswer
from tests.support.backend import Backend, auth, new_user
from tests.support.results import completed, processing

STATUS_KEYS = {
    "job_id",
    "status",
    "progress",
    "result",
    "stage",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
}


async def test_status_shape(backend: Backend) -> None:
    job_id = await backend.start_job()
    r = await backend.status(job_id)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    assert set(data) == STATUS_KEYS == set(JobStatusAnswer.model_fields)
    assert data["job_id"] == job_id and data["status"] == "pending" and data["result"] is None
    assert data["created_at"].endswith("+00:00")


async def test_pre_serialized_status_parses_as_the_model_clients_read(backend: Backend) -> None:
    """The status bytes are spliced by hand on the fast path; `ecg analyze` reads them with
    `ecg_protocol.public.JobStatusAnswer`, in every state."""
    done, failed = await backend.start_job(), await backend.start_job()
    pending = JobStatusAnswer.model_validate_json((await backend.status(done)).content)
    assert pending.status is JobStatus.PENDING and pending.result is None
    await backend.callback(completed(done))
    answer = JobStatusAnswer.model_validate_json((await backend.status(done)).content)
    assert answer.status is JobStatus.COMPLETED and answer.result is not None
    assert answer.result.segments and answer.result.metadata.unique_speakers >= 1
    await backend.callback({"job_id": failed, "status": "failed", "error_code": "NO_AUDIO_TRACK"})
    lost = JobStatusAnswer.model_validate_json((await backend.status(failed)).content)
    assert lost.status is JobStatus.FAILED and lost.error_code and lost.result is None


async def test_status_unknown_and_malformed_ids(backend: Backend) -> None:
    for jid in (str(uuid.uuid4()), "nope", "1' OR '1'='1"):
        r = await backend.status(jid)
        assert r.status_code == 404 and r.json()["error"] == "JOB_NOT_FOUND"


async def test_other_users_job_is_404_everywhere(backend: Backend) -> None:
    alice, bob = new_user(), new_user()
    job_id = await backend.start_job(headers=auth(alice))
    assert (await backend.status(job_id, auth(alice))).status_code == 200
    assert (await backend.status(job_id, auth(bob))).status_code == 404
    assert (await backend.status(job_id)).status_code == 404  # anonymous
    assert (
        await backend.client.delete(f"/api/jobs/{job_id}", headers=auth(bob))
    ).status_code == 404
    listed = (await backend.client.get("/api/jobs", headers=auth(bob))).json()
    assert listed == {"jobs": [], "count": 0}


async def test_final_status_is_cached_and_delete_invalidates(backend: Backend) -> None:
    user = new_user()
    job_id = await backend.start_job(headers=auth(user))
    await backend.callback(completed(job_id))
    first = await backend.status(job_id, auth(user))
    assert first.json()["status"] == "completed"
    assert len(backend.ctx.status.cache) >= 1
    second = await backend.status(job_id, auth(user))
    assert second.content == first.content
    # Cached answers still respect ownership.
    assert (await backend.status(job_id, auth(new_user()))).status_code == 404
    r = await backend.client.delete(f"/api/jobs/{job_id}", headers=auth(user))
    assert r.status_code == 200 and r.json() == {"job_id": job_id, "deleted": True}
    assert (await backend.status(job_id, auth(user))).status_code == 404
    assert (
        await backend.client.delete(f"/api/jobs/{job_id}", headers=auth(user))
    ).status_code == 404


async def test_open_status_follows_callbacks_immediately(backend: Backend) -> None:
    job_id = await backend.start_job()
    assert (await backend.status(job_id)).json()["progress"] == 0
    await backend.callback(processing(job_id, 42))
    assert (await backend.status(job_id)).json()["progress"] == 42


async def test_list_jobs_newest_first_and_paged(backend: Backend) -> None:
    user = new_user()
    ids = [await backend.start_job(headers=auth(user)) for _ in range(3)]
    r = await backend.client.get("/api/jobs", headers=auth(user))
    data = r.json()
    assert data["count"] == 3
    assert {j["job_id"] for j in data["jobs"]} == set(ids)
    assert "result" not in data["jobs"][0]
    page = (await backend.client.get("/api/jobs?limit=2&offset=2", headers=auth(user))).json()
    assert page["count"] == 1
    assert (await backend.client.get("/api/jobs?limit=0", headers=auth(user))).status_code == 422
    assert (await backend.client.get("/api/jobs?limit=x", headers=auth(user))).status_code == 422


async def test_delete_open_job_cancels_on_ml_server(backend: Backend) -> None:
    user = new_user()
    job_id = await backend.start_job(headers=auth(user))
    r = await backend.client.delete(f"/api/jobs/{job_id}", headers=auth(user))
    assert r.status_code == 200
    r = await backend.callback(processing(job_id, 10))
    assert r.status_code == 404  # late callbacks for a deleted job


async def test_backend_health(backend: Backend) -> None:
    r = await backend.client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"


async def test_metrics_endpoint(backend: Backend) -> None:
    r = await backend.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in (
        "ecg_ml_requests_total",
        "ecg_job_success_rate",
        "ecg_job_error_rate",
        "ecg_job_processing_seconds",
    ):
        assert name in r.text


async def test_web_page_and_unknown_paths(backend: Backend) -> None:
    r = await backend.client.get("/")
    assert r.status_code == 200 and "html" in r.headers["content-type"]
    assert (await backend.client.get("/api/nothing-here")).status_code == 404
    assert (await backend.client.put("/api/upload-video/status/x")).status_code in (404, 405)
