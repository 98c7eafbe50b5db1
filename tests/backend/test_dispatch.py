"""Durable dispatch and reconciliation (docs/protocol.md, *Job state machine*) against real
PostgreSQL and SQLite.

The only fake is the ML server (tests/support/fake_ml.py), a real HTTP server that verifies the
backend's signature. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.core.config import Settings
from app.models.job import Base, Job
from app.services import metrics
from app.services.dispatch import Dispatcher
from app.services.job_service import ClaimedJob, utcnow
from app.services.ml_client import process_message_id
from ecg_protocol import ProcessRequest
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.results import RESULT_WIRE

SECRET = "dispatch-test-secret"
Sessions = async_sessionmaker[AsyncSession]


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- fixtures


class Harness:
    """Engines, session factories and dispatchers made by a test, torn down after it."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self._engines: list[Any] = []
        self._dispatchers: list[Dispatcher] = []
        self._clients: list[httpx.AsyncClient] = []
        self.sessions = self.new_sessions()

    def new_sessions(self) -> Sessions:
        engine = create_async_engine(self.url)
        self._engines.append(engine)
        return async_sessionmaker(engine, expire_on_commit=False)

    async def create_tables(self) -> None:
        async with self._engines[0].begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    def settings(self, ml_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "model_server_url": ml_url,
            "webhook_secret_key": SECRET,
            "ecg_data_dir": self.tmp_path,
            "fastapi_base_url": "http://127.0.0.1:9",
            "ml_api_timeout": 2.0,
            "dispatch_retry_delays": "0.2,0.4",
            "dispatch_poll_interval_s": 0.05,
            "dispatch_lease_s": 1.0,
            "reconcile_interval_s": 3600.0,
            "reconcile_max_redispatch": 2,
        }
        values.update(overrides)
        return Settings(**values)

    async def dispatcher(
        self, settings: Settings, *, sessions: Sessions | None = None, start: bool = True, **kw: Any
    ) -> Dispatcher:
        http = httpx.AsyncClient()
        self._clients.append(http)
        d = Dispatcher(
            settings=settings, session_factory=sessions or self.sessions, http=http, **kw
        )
        self._dispatchers.append(d)
        if start:
            await d.start()
        return d

    async def add_jobs(self, n: int = 1, **values: Any) -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(n)]
        async with self.sessions() as s, s.begin():
            for jid in ids:
                s.add(
                    Job(
                        job_id=jid,
                        status="pending",
                        video_url=f"http://storage.test/videos/{jid}.mp4",
                        file_key=f"videos/anonymous/20240101_000000_abcd1234_{jid.hex[:6]}.mp4",
                        language="auto",
                        options={"min_speakers": 1, "max_speakers": 3},
                        **values,
                    )
                )
        return ids

    async def job(self, job_id: uuid.UUID) -> Job:
        async with self.sessions() as s:
            job = (await s.execute(select(Job).where(Job.job_id == job_id))).scalar_one()
            return job

    async def close(self) -> None:
        for d in self._dispatchers:
            await d.stop(grace_s=1.0)
        for c in self._clients:
            await c.aclose()
        for e in self._engines:
            await e.dispose()


@pytest.fixture
async def h(empty_db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(empty_db_url, tmp_path)
    await harness.create_tables()
    yield harness
    await harness.close()


@pytest.fixture
async def pg(empty_pg_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(empty_pg_url, tmp_path)
    await harness.create_tables()
    yield harness
    await harness.close()


@pytest.fixture
def fake() -> Iterator[FakeMLServer]:
    with FakeMLServer(secret=SECRET) as server:
        yield server


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def status_is(h: Harness, job_id: uuid.UUID, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await h.job(job_id)).status == status

    return check


def dispatched(h: Harness, job_id: uuid.UUID) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await h.job(job_id)).dispatched_at is not None

    return check


# ---------------------------------------------------------------------------- dispatch


async def test_dispatch_is_prompt_and_signed(h: Harness, fake: FakeMLServer) -> None:
    # A long poll interval: only wake() can make the dispatch prompt.
    d = await h.dispatcher(h.settings(fake.url, dispatch_poll_interval_s=30.0))
    await asyncio.sleep(0)  # let the startup pass find nothing
    [jid] = await h.add_jobs()
    started = time.monotonic()
    d.wake()
    await wait_for(dispatched(h, jid), timeout_s=3.0, what="dispatched_at")
    assert time.monotonic() - started < 2.0

    [req] = fake.process_requests(str(jid))
    assert req.verified, "the fake ML server must accept the backend's signature"
    assert req.msg_id == process_message_id(jid, 0)
    body = ProcessRequest.model_validate_json(req.body)
    assert body.video_url == f"http://storage.test/videos/{jid}.mp4"
    assert body.fastapi_base_url == "http://127.0.0.1:9"
    assert body.language == "auto"
    assert (body.options.min_speakers, body.options.max_speakers) == (1, 3)

    job = await h.job(jid)
    assert job.status == "pending"  # the ML server has not called back yet
    assert job.last_event_at is not None
    assert job.next_attempt_at is None
    assert job.dispatch_attempts == 0


async def test_ml_server_down_retries_then_connection_error(h: Harness) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    [jid] = await h.add_jobs()
    started = time.monotonic()
    await h.dispatcher(h.settings(dead_url))
    await wait_for(status_is(h, jid, "failed"), what="failed job")
    elapsed = time.monotonic() - started
    job = await h.job(jid)
    assert job.error_code == "CONNECTION_ERROR"
    assert job.error_message is not None
    assert job.error_message.startswith("CONNECTION_ERROR: ")
    assert job.dispatch_attempts == 3  # first try + the two configured retries
    assert elapsed >= 0.2 + 0.4 - 0.05  # waited the configured delays
    assert job.dispatched_at is None


async def test_slow_ml_server_times_out(h: Harness, fake: FakeMLServer) -> None:
    fake.behaviour.delay_s = 1.5
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url, ml_api_timeout=0.3, dispatch_retry_delays="0.1"))
    await wait_for(status_is(h, jid, "failed"), what="failed job")
    job = await h.job(jid)
    assert job.error_code == "TIMEOUT_ERROR"
    assert job.error_message is not None and job.error_message.startswith("TIMEOUT_ERROR: ")
    assert len(fake.process_requests(str(jid))) == 2


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_ml_server_500s_fail_with_ml_server_error(h: Harness, fake: FakeMLServer) -> None:
    sent = _metric("ecg_ml_requests_total")
    errors = _metric("ecg_ml_request_errors_total", {"code": "ML_SERVER_ERROR"})
    failed = _metric("ecg_jobs_finished_total", {"status": "failed", "code": "ML_SERVER_ERROR"})
    fake.behaviour.always_status = 500
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url))
    await wait_for(status_is(h, jid, "failed"), what="failed job")
    job = await h.job(jid)
    assert job.error_code == "ML_SERVER_ERROR"
    assert job.error_message is not None and "HTTP 500" in job.error_message
    assert len(fake.process_requests(str(jid))) == 3
    # The guide's metric points: requests sent, errors, failed jobs.
    assert _metric("ecg_ml_requests_total") - sent == 3
    assert _metric("ecg_ml_request_errors_total", {"code": "ML_SERVER_ERROR"}) - errors == 3
    labels = {"status": "failed", "code": "ML_SERVER_ERROR"}
    assert _metric("ecg_jobs_finished_total", labels) - failed == 1


async def test_4xx_is_rejected_without_retry(h: Harness, fake: FakeMLServer) -> None:
    fake.behaviour.always_status = 422
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url))
    await wait_for(status_is(h, jid, "failed"), what="failed job")
    job = await h.job(jid)
    assert job.error_code == "DISPATCH_REJECTED"
    assert job.error_message is not None
    assert job.error_message.startswith("DISPATCH_REJECTED: ML server refused the job (HTTP 422)")
    assert len(fake.process_requests(str(jid))) == 1


async def test_recovers_after_transient_failures(h: Harness, fake: FakeMLServer) -> None:
    fake.behaviour.fail_statuses = [503, 502]
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url))
    await wait_for(dispatched(h, jid), what="dispatch after two failures")
    job = await h.job(jid)
    assert job.status == "pending" and job.error_code is None
    assert job.dispatch_attempts == 2
    reqs = fake.process_requests(str(jid))
    assert len(reqs) == 3
    # One message retried: the same webhook-id every time (the receiver deduplicates on it).
    assert {r.msg_id for r in reqs} == {process_message_id(jid, 0)}
    assert reqs[1].at - reqs[0].at >= 0.2 - 0.05
    assert reqs[2].at - reqs[1].at >= 0.4 - 0.05


async def test_429_honours_retry_after(h: Harness, fake: FakeMLServer) -> None:
    fake.behaviour.fail_statuses = [429]
    fake.behaviour.retry_after = "1"
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url, dispatch_retry_delays="0.05"))
    await wait_for(dispatched(h, jid), what="dispatch after 429")
    first, second = fake.process_requests(str(jid))
    assert second.at - first.at >= 0.95


async def test_callback_that_raced_in_is_not_overwritten(h: Harness, fake: FakeMLServer) -> None:
    # The job already failed by the time the send fails: the dispatcher must not touch it.
    fake.behaviour.delay_s = 0.5
    fake.behaviour.always_status = 422
    [jid] = await h.add_jobs()
    await h.dispatcher(h.settings(fake.url))
    await wait_for(lambda: _has_request(fake, jid), what="request at the fake")
    async with h.sessions() as s, s.begin():
        job = (await s.execute(select(Job).where(Job.job_id == jid))).scalar_one()
        job.status, job.error_code, job.error_message = "failed", "NO_AUDIO_TRACK", "no audio"
    await wait_for(lambda: _send_finished(fake, jid), what="fake answered")
    # Give the dispatcher time to record its outcome, then check it changed nothing.
    await wait_for(_idle(h), what="dispatcher idle")
    job = await h.job(jid)
    assert (job.status, job.error_code) == ("failed", "NO_AUDIO_TRACK")


async def _has_request(fake: FakeMLServer, jid: uuid.UUID) -> bool:
    return bool(fake.process_requests(str(jid)))


async def _send_finished(fake: FakeMLServer, jid: uuid.UUID) -> bool:
    reqs = fake.process_requests(str(jid))
    return bool(reqs) and time.monotonic() - reqs[0].at > 0.6


def _idle(h: Harness) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(not d._sends for d in h._dispatchers)

    return check


# ---------------------------------------------------------------------------- restart


async def test_restart_dispatches_rows_left_by_a_dead_backend(
    h: Harness, fake: FakeMLServer
) -> None:
    # Backend A claims the job, then dies mid-send (its send never records anything).
    fake.behaviour.delay_s = 5.0
    [jid] = await h.add_jobs()
    settings = h.settings(fake.url, ml_api_timeout=0.5, dispatch_lease_s=0.8)
    a = await h.dispatcher(settings)
    await wait_for(lambda: _has_request(fake, jid), what="backend A's request")
    await a.stop(grace_s=0)
    fake.behaviour.delay_s = 0.0
    job = await h.job(jid)
    assert job.dispatched_at is None and job.next_attempt_at is not None  # leased by A

    # Backend B starts on the same database and takes the row once A's lease runs out.
    await h.dispatcher(settings, sessions=h.new_sessions())
    await wait_for(dispatched(h, jid), what="dispatch by backend B")
    assert fake.accepted[str(jid)] == 1


async def test_rows_written_while_down_are_sent_on_start(h: Harness, fake: FakeMLServer) -> None:
    ids = await h.add_jobs(5)
    await h.dispatcher(h.settings(fake.url, dispatch_poll_interval_s=30.0))
    for jid in ids:
        await wait_for(dispatched(h, jid), timeout_s=3.0, what=f"dispatch of {jid}")


class _SlowFirstClaim(Dispatcher):
    """Its first claim returns late, as on a loaded machine: a row falls due while it runs."""

    def __init__(self, *, hold_s: float, **kw: Any) -> None:
        super().__init__(**kw)
        self._hold_s = hold_s

    async def claim(self, *, limit: int) -> list[ClaimedJob]:
        claimed = await super().claim(limit=limit)
        hold, self._hold_s = self._hold_s, 0.0
        await asyncio.sleep(hold)
        return claimed


async def test_a_row_falling_due_during_a_claim_is_sent_without_waiting_a_poll(
    h: Harness, fake: FakeMLServer
) -> None:
    # A retry due 1 s from now; the first claim (at start) misses it and returns 2 s later.
    # The loop must count what fell due since that claim began, not sleep the 30 s poll.
    # (CI saw this: a restarted backend came up just before a retry was due and sat idle.)
    [jid] = await h.add_jobs(next_attempt_at=utcnow() + timedelta(seconds=1.0))
    settings = h.settings(fake.url, dispatch_poll_interval_s=30.0)
    http = httpx.AsyncClient()
    d = _SlowFirstClaim(hold_s=2.0, settings=settings, session_factory=h.sessions, http=http)
    await d.start()
    try:
        await wait_for(dispatched(h, jid), timeout_s=10.0, what="the retry that fell due")
        assert fake.accepted[str(jid)] == 1
    finally:
        await d.stop(grace_s=1.0)
        await http.aclose()


# ---------------------------------------------------------------------------- replicas


async def test_two_dispatchers_on_one_postgresql_never_double_send(
    pg: Harness, fake: FakeMLServer
) -> None:
    ids = await pg.add_jobs(120)
    settings = pg.settings(fake.url)
    first = await pg.dispatcher(settings, sessions=pg.new_sessions(), start=False)
    second = await pg.dispatcher(settings, sessions=pg.new_sessions(), start=False)
    await asyncio.gather(first.start(), second.start())

    async def all_dispatched() -> bool:
        async with pg.sessions() as s:
            rows = (await s.execute(select(Job.dispatched_at))).scalars().all()
        return all(r is not None for r in rows)

    await wait_for(all_dispatched, timeout_s=60.0, what="all 120 jobs dispatched")
    assert sorted(fake.process_posts) == sorted(str(j) for j in ids)
    assert set(fake.process_posts.values()) == {1}, "a job was sent twice"


async def test_concurrent_claims_are_disjoint(pg: Harness) -> None:
    await pg.add_jobs(60)
    settings = pg.settings("http://127.0.0.1:9")
    dispatchers = [
        await pg.dispatcher(settings, sessions=pg.new_sessions(), start=False) for _ in range(4)
    ]
    batches = await asyncio.gather(*(d.claim(limit=20) for d in dispatchers))
    claimed = [c.job_id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed)) == 60


async def test_sqlite_claims_are_disjoint(tmp_path: Path) -> None:
    h = Harness(f"sqlite+aiosqlite:///{tmp_path / 'cas.db'}", tmp_path)
    try:
        await h.create_tables()
        await h.add_jobs(30)
        settings = h.settings("http://127.0.0.1:9")
        d1 = await h.dispatcher(settings, start=False)
        d2 = await h.dispatcher(settings, sessions=h.new_sessions(), start=False)
        claimed: list[uuid.UUID] = []
        for _ in range(3):  # both race for the same candidates; CAS gives each row to one
            batches = await asyncio.gather(d1.claim(limit=20), d2.claim(limit=20))
            claimed += [c.job_id for batch in batches for c in batch]
        assert len(claimed) == len(set(claimed)) == 30
    finally:
        await h.close()


# ---------------------------------------------------------------------------- reconcile


def _reconciling(h: Harness, url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {"ml_api_timeout": 0.3, "reconcile_interval_s": 0.1}
    values.update(kw)
    return h.settings(url, **values)


async def test_reconcile_fetches_result_when_callback_was_lost(
    h: Harness, fake: FakeMLServer
) -> None:
    [jid] = await h.add_jobs()
    await h.dispatcher(_reconciling(h, fake.url))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.finish(str(jid), RESULT_WIRE, callback=False)
    await wait_for(status_is(h, jid, "completed"), what="completed via reconcile")
    job = await h.job(jid)
    assert job.progress == 100 and job.result is not None
    seg = job.result["segments"][0]
    assert (seg["start"], seg["end"]) == (4.908, 8.754)  # normalized like the webhook does
    assert "start_time" not in seg
    assert set(seg["words"][0]) >= {"word", "start", "end", "volume_db", "pitch_hz", "speaker_id"}


async def test_reconcile_records_ml_failure(h: Harness, fake: FakeMLServer) -> None:
    [jid] = await h.add_jobs()
    await h.dispatcher(_reconciling(h, fake.url))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.fail(str(jid), "NO_AUDIO_TRACK", "the file has no audio track", callback=False)
    await wait_for(status_is(h, jid, "failed"), what="failed via reconcile")
    job = await h.job(jid)
    assert job.error_code == "NO_AUDIO_TRACK"
    assert job.error_message == "NO_AUDIO_TRACK: the file has no audio track"


async def test_reconcile_keeps_running_job_open(h: Harness, fake: FakeMLServer) -> None:
    [jid] = await h.add_jobs()
    d = await h.dispatcher(_reconciling(h, fake.url, reconcile_interval_s=3600.0))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.set_running(str(jid))
    before = (await h.job(jid)).last_event_at

    async def quiet() -> bool:
        return await d.reconciler.reconcile_once() > 0

    await wait_for(quiet, what="the job to go quiet and be looked up")
    job = await h.job(jid)
    # The ML server's news is recorded forward-only, as a progress callback would be.
    assert (job.status, job.progress, job.stage) == ("processing", 40, "transcribe")
    assert job.dispatched_at is not None
    assert job.last_event_at is not None and before is not None
    assert _utc(job.last_event_at) > _utc(before)
    assert job.redispatch_count == 0


async def test_reconcile_leaves_jobs_alone_while_ml_server_is_unreachable(
    h: Harness, fake: FakeMLServer
) -> None:
    [jid] = await h.add_jobs()
    d = await h.dispatcher(_reconciling(h, fake.url, reconcile_interval_s=3600.0))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.stop()

    async def looked_up() -> bool:
        return await d.reconciler.reconcile_once() > 0

    await wait_for(looked_up, what="a reconcile round")
    job = await h.job(jid)
    assert job.status == "pending" and job.dispatched_at is not None
    assert job.redispatch_count == 0


async def test_lost_job_is_redispatched_then_fails_job_lost(h: Harness, fake: FakeMLServer) -> None:
    fake.behaviour.lose_jobs = True
    [jid] = await h.add_jobs()
    await h.dispatcher(_reconciling(h, fake.url, reconcile_max_redispatch=2))
    await wait_for(status_is(h, jid, "failed"), timeout_s=15.0, what="JOB_LOST")
    job = await h.job(jid)
    assert job.error_code == "JOB_LOST"
    assert job.redispatch_count == 2
    reqs = fake.process_requests(str(jid))
    assert len(reqs) == 3  # the first dispatch and two re-dispatches
    assert [r.msg_id for r in reqs] == [process_message_id(jid, n) for n in range(3)]


async def test_lost_job_redispatch_recovers(h: Harness, fake: FakeMLServer) -> None:
    [jid] = await h.add_jobs()
    await h.dispatcher(_reconciling(h, fake.url))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.forget(str(jid))  # the ML server restarted and lost its queue

    async def redispatched() -> bool:
        job = await h.job(jid)
        return job.redispatch_count == 1 and job.dispatched_at is not None

    await wait_for(redispatched, what="re-dispatch")
    fake.finish(str(jid), RESULT_WIRE, callback=False)
    await wait_for(status_is(h, jid, "completed"), what="completion after re-dispatch")


# ---------------------------------------------------------------------------- unreachable


class _MediaServer:
    """Serves files from a folder over real HTTP (the storage's download URLs, for ffprobe)."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.port = int(self._server.server_address[1])

    def generate_download_url(self, file_key: str) -> str:
        return f"http://127.0.0.1:{self.port}/{PurePosixPath(file_key).name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


async def test_unreachable_ml_server_fails_the_job_after_its_deadline(
    h: Harness, fake: FakeMLServer
) -> None:
    """The ML server accepts the job, then is gone for good: the job fails, it does not wait."""
    [jid] = await h.add_jobs()
    await h.dispatcher(_reconciling(h, fake.url, ml_unreachable_deadline_s=1.0))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.stop()
    await wait_for(status_is(h, jid, "failed"), timeout_s=15.0, what="ML_SERVER_UNREACHABLE")
    job = await h.job(jid)
    assert job.error_code == "ML_SERVER_UNREACHABLE"
    assert job.error_message is not None and "media duration unknown" in job.error_message
    # Unheard since the dispatch (the failure itself stamps last_event_at).
    assert job.dispatched_at is not None and job.updated_at is not None
    assert (_utc(job.updated_at) - _utc(job.dispatched_at)).total_seconds() >= 1.0


async def test_unreachable_deadline_grows_with_the_media_duration(
    h: Harness, fake: FakeMLServer, tmp_path: Path
) -> None:
    """A 4 s clip with factor 1 waits 4 s, not the 0.5 s floor: the duration is read by ffprobe."""
    media = tmp_path / "media"
    media.mkdir()
    [jid] = await h.add_jobs()
    key = (await h.job(jid)).file_key
    assert key is not None
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=4",
            str(media / PurePosixPath(key).name),
        ],
        check=True,
    )
    storage = _MediaServer(media)
    try:
        settings = _reconciling(
            h, fake.url, ml_unreachable_deadline_s=0.5, ml_unreachable_duration_factor=1.0
        )
        await h.dispatcher(settings, storage=storage)
        await wait_for(dispatched(h, jid), what="dispatch")
        fake.stop()
        await wait_for(status_is(h, jid, "failed"), timeout_s=20.0, what="ML_SERVER_UNREACHABLE")
    finally:
        storage.close()
    job = await h.job(jid)
    assert job.error_code == "ML_SERVER_UNREACHABLE"
    assert job.error_message is not None and "deadline 4s, 4.0s of media" in job.error_message
    # Unheard since the dispatch (the failure itself stamps last_event_at).
    assert job.dispatched_at is not None and job.updated_at is not None
    assert (_utc(job.updated_at) - _utc(job.dispatched_at)).total_seconds() >= 4.0


async def test_every_request_to_the_ml_server_carries_the_standard_headers(
    h: Harness, fake: FakeMLServer
) -> None:
    """The fake verifies strictly (all three webhook-* headers): dispatch and lookups pass."""
    [jid] = await h.add_jobs()
    d = await h.dispatcher(_reconciling(h, fake.url, reconcile_interval_s=3600.0))
    await wait_for(dispatched(h, jid), what="dispatch")
    fake.set_running(str(jid))

    async def looked_up() -> bool:
        return await d.reconciler.reconcile_once() > 0

    await wait_for(looked_up, what="a reconcile round")
    methods = {r.method for r in fake.received if r.job_id == str(jid)}
    assert methods == {"POST", "GET"}
    assert fake.all_verified()
    assert all(r.msg_id for r in fake.received)
