"""The official `openai` client against the in-process backend, and the fake ML server's side
of a /v1 call: wait for the dispatch, then answer it with a signed callback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai

from tests.support.backend import BASE_URL, Backend
from tests.support.fake_ml import FakeMLServer
from tests.support.results import caption_result

# Larger than any JSON body limit: the one-call route carries media, bounded by the upload limit.
MEDIA = ("talk.mp4", b"\x00" * 200_000, "video/mp4")


# A loaded 2-core machine can take tens of seconds to dispatch and store a job; the call's wait
# and the test's must both outlast that, or a slow run reads as "still processing" (504).
WAIT_S = 180.0


def client_for(backend: Backend) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=backend.app), base_url=BASE_URL)
    return openai.AsyncOpenAI(
        api_key="any-key", base_url=f"{BASE_URL}/v1", http_client=http, max_retries=0
    )


async def dispatched(fake: FakeMLServer, n: int, timeout_s: float = WAIT_S / 2) -> list[str]:
    """Job ids the fake ML server accepted, once it has `n` of them."""
    deadline = time.monotonic() + timeout_s
    while len(fake.accepted) < n:
        assert time.monotonic() < deadline, "the backend never dispatched the job"
        await asyncio.sleep(0.05)
    return list(fake.accepted)


async def finish(backend: Backend, fake: FakeMLServer, n: int, **payload: Any) -> str:
    job_id = (await dispatched(fake, n))[n - 1]
    body = {"job_id": job_id, "progress": 100, **payload}
    resp = await backend.callback(body)
    assert resp.status_code == 200, resp.text
    return job_id


def completed() -> dict[str, Any]:
    result = caption_result().to_stored()
    result["metadata"]["language"] = "en"
    result["segments"][1]["language"] = "fr"
    return {"status": "completed", "result": result}
