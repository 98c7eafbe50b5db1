"""A fake ML server speaking the ML server API (docs/ml-server.md): the one allowed fake when
testing the backend alone.

It is a real HTTP server (uvicorn on a free port, in a thread with its own event loop), verifies
the backend's signature on every request, deduplicates `POST /process` by `job_id`, answers
`GET /jobs/{id}` and `/health`, and can be told to misbehave: be down, be slow, answer 5xx or
4xx, lose jobs, finish a job with or without the signed callback to `fastapi_base_url`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from ecg_protocol import (
    CancelAccepted,
    LanguageName,
    MLJobStatus,
    MLServerHealth,
    MLServerLanguages,
    ProcessAccepted,
    ProcessRequest,
    SignatureError,
    sign_headers,
    verify_signature,
)
from ecg_protocol.bodyless import bodyless_signed_content
from tests.support.net import free_port


@dataclass
class Received:
    """One request that reached the fake."""

    method: str
    path: str
    job_id: str | None
    msg_id: str | None
    verified: bool
    at: float
    body: bytes = b""


@dataclass
class FakeJob:
    request: ProcessRequest
    status: str = "queued"
    progress: int = 0
    stage: str | None = "queued"
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class Behaviour:
    """What the fake does with the next requests; tests change it at any time."""

    delay_s: float = 0.0  # sleep before answering POST /process (→ backend timeout)
    fail_statuses: list[int] = field(default_factory=list)  # answer these first, one each
    always_status: int | None = None  # answer every POST /process with this status
    retry_after: str | None = None  # Retry-After header on error answers
    lose_jobs: bool = False  # answer 202 but forget the job (GET /jobs → 404)


class FakeMLServer:
    """Run with `start()`/`stop()` (restartable on the same port) or as a context manager."""

    def __init__(self, *, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.jobs: dict[str, FakeJob] = {}
        self.process_posts: Counter[str] = Counter()  # POST /process per job_id (all answers)
        self.accepted: Counter[str] = Counter()  # 2xx answers per job_id
        self.callbacks: list[tuple[str, int]] = []  # (job_id, backend HTTP status)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> FakeMLServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=self._serve, args=(server,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake ML server did not start on :{self.port}")
            time.sleep(0.01)
        return self

    def _serve(self, server: uvicorn.Server) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(server.serve())
        finally:
            loop.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
        self._loop = None

    def __enter__(self) -> FakeMLServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    def process_requests(self, job_id: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.path == "/process" and (job_id is None or r.job_id == job_id)
            ]

    def all_verified(self) -> bool:
        with self._lock:
            return all(r.verified for r in self.received)

    # ------------------------------------------------------------------ driving jobs

    def forget(self, job_id: str) -> None:
        """Lose a job the way a crashed ML server would (GET /jobs → 404)."""
        with self._lock:
            self.jobs.pop(job_id, None)

    def set_running(self, job_id: str, progress: int = 40, stage: str = "transcribe") -> None:
        with self._lock:
            job = self.jobs[job_id]
            job.status, job.progress, job.stage = "processing", progress, stage

    def finish(
        self, job_id: str, result: dict[str, Any], *, callback: bool = True
    ) -> concurrent.futures.Future[int] | None:
        """Complete a job; with `callback` post the signed `completed` callback (future: status)."""
        with self._lock:
            job = self.jobs[job_id]
            job.status, job.progress, job.stage, job.result = "completed", 100, "done", result
        if not callback:
            return None
        payload = {
            "job_id": job_id,
            "status": "completed",
            "progress": 100,
            "message": "Processing completed",
            "stage": "done",
            "result": result,
            "error_message": None,
            "error_code": None,
        }
        return self._post_callback(job, payload)

    def fail(
        self, job_id: str, code: str, message: str, *, callback: bool = True
    ) -> concurrent.futures.Future[int] | None:
        with self._lock:
            job = self.jobs[job_id]
            job.status, job.error_code, job.error_message = "failed", code, message
        if not callback:
            return None
        payload = {
            "job_id": job_id,
            "status": "failed",
            "progress": job.progress,
            "message": message,
            "error_message": message,
            "error_code": code,
        }
        return self._post_callback(job, payload)

    def _post_callback(
        self, job: FakeJob, payload: dict[str, Any]
    ) -> concurrent.futures.Future[int]:
        assert self._loop is not None, "fake ML server is not running"
        return asyncio.run_coroutine_threadsafe(self._send_callback(job, payload), self._loop)

    async def _send_callback(self, job: FakeJob, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        headers = sign_headers(body, self.secret)
        headers["Content-Type"] = "application/json"
        url = job.request.fastapi_base_url.rstrip("/") + "/api/upload-video/result"
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(url, content=body, headers=headers)
        with self._lock:
            self.callbacks.append((job.request.job_id, response.status_code))
        return response.status_code

    # ------------------------------------------------------------------ HTTP API

    def _verify(self, body: bytes, request: Request) -> bool:
        try:
            verify_signature(body, request.headers, self.secret, strict=True)
        except SignatureError:
            return False
        return True

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> MLServerHealth:
            return MLServerHealth(
                models_loaded=True,
                queue_depth=0,
                running=0,
                workers=1,
                version="fake",
                languages=["en", "de"],
            )

        @app.get("/languages")
        async def languages() -> MLServerLanguages:
            return MLServerLanguages(
                asr_model="bundled:base",
                english_model="/srv/models/tiny.en",
                # What its workers hold: the two above and one extra (ML_EXTRA_ASR_MODELS).
                models=["bundled:base", "tiny.en", "small"],
                languages=[
                    LanguageName(code="en", name="english"),
                    LanguageName(code="de", name="german"),
                ],
            )

        @app.post("/process")
        async def process(request: Request) -> Response:
            body = await request.body()
            verified = self._verify(body, request)
            job_id: str | None = None
            try:
                parsed = ProcessRequest.model_validate_json(body)
                job_id = parsed.job_id
            except ValueError:
                parsed = None
            b = self.behaviour
            with self._lock:
                self.received.append(
                    Received(
                        "POST",
                        "/process",
                        job_id,
                        request.headers.get("webhook-id"),
                        verified,
                        time.monotonic(),
                        body,
                    )
                )
                if job_id is not None:
                    self.process_posts[job_id] += 1
                status = b.always_status or (b.fail_statuses.pop(0) if b.fail_statuses else None)
            if b.delay_s:
                await asyncio.sleep(b.delay_s)
            if not verified:
                return JSONResponse({"detail": "invalid signature"}, status_code=401)
            if parsed is None or job_id is None:
                return JSONResponse({"detail": "invalid request"}, status_code=422)
            if status is not None:
                headers = {"Retry-After": b.retry_after} if b.retry_after else None
                return JSONResponse({"detail": "programmed failure"}, status, headers=headers)
            with self._lock:
                self.accepted[job_id] += 1
                if not b.lose_jobs and job_id not in self.jobs:
                    self.jobs[job_id] = FakeJob(request=parsed)
            accepted = ProcessAccepted(job_id=job_id, status=MLJobStatus.QUEUED)
            return JSONResponse(accepted.model_dump(mode="json"), status_code=202)

        @app.get("/jobs/{job_id}")
        async def get_job(job_id: str, request: Request) -> Response:
            # Like the real ML server: a body-less request signs its method and path.
            verified = self._verify(bodyless_signed_content("GET", f"/jobs/{job_id}"), request)
            with self._lock:
                self.received.append(
                    Received(
                        "GET",
                        "/jobs",
                        job_id,
                        request.headers.get("webhook-id"),
                        verified,
                        time.monotonic(),
                    )
                )
                job = self.jobs.get(job_id)
                doc = None
                if job is not None:
                    doc = {
                        "job_id": job_id,
                        "status": job.status,
                        "stage": job.stage,
                        "progress": job.progress,
                        "result": job.result,
                        "error_code": job.error_code,
                        "error_message": job.error_message,
                    }
            if not verified:
                return JSONResponse({"detail": "invalid signature"}, status_code=401)
            if doc is None:
                return JSONResponse({"detail": "job not found"}, status_code=404)
            return JSONResponse(doc)

        @app.delete("/jobs/{job_id}")
        async def cancel_job(job_id: str, request: Request) -> Response:
            # Signed like the real ML server checks it: method and path, no body.
            content = bodyless_signed_content("DELETE", f"/jobs/{job_id}")
            verified = self._verify(content, request)
            with self._lock:
                self.received.append(
                    Received(
                        "DELETE",
                        "/jobs",
                        job_id,
                        request.headers.get("webhook-id"),
                        verified,
                        time.monotonic(),
                    )
                )
                job = self.jobs.get(job_id)
                if verified and job is not None:
                    job.status = "cancelled"
            if not verified:
                return JSONResponse({"detail": "invalid signature"}, status_code=401)
            if job is None:
                return JSONResponse({"detail": "job not found"}, status_code=404)
            cancelled = CancelAccepted(job_id=job_id, status=MLJobStatus.CANCELLED)
            return JSONResponse(cancelled.model_dump(mode="json"), status_code=202)

        return app
