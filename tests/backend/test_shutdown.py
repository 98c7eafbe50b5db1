"""Shutdown is bounded: the dispatcher always sees its cancellation, and the app's lifespan ends
even when a wake-up and the stop land in the same event-loop tick.

The suite used to hang in the `backend` fixture's teardown: `asyncio.wait_for` on Python 3.11
swallows a cancel that arrives as the awaited event fires (CPython gh-86296), so the dispatch
loop kept running and `Dispatcher.stop()` awaited it forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.services.dispatch import Dispatcher, cancel_and_wait, wait_event
from tests.support.backend import make_settings, open_backend


async def test_wait_event_lets_a_simultaneous_cancel_through() -> None:
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_event(event, timeout_s=30))
    for _ in range(3):
        await asyncio.sleep(0)  # let the waiter block on the event
    event.set()
    waiter.cancel()  # same tick as the wake-up
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_wait_event_times_out_and_wakes() -> None:
    event = asyncio.Event()
    assert await wait_event(event, timeout_s=0.01) is False
    event.set()
    assert await wait_event(event, timeout_s=5) is True


async def test_cancel_and_wait_gives_up_on_a_task_that_ignores_cancel() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # swallows every cancel, like the 3.11 wait_for race did

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await cancel_and_wait([task], timeout_s=0.2) is False
    assert time.monotonic() - started < 5
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)


def _count_claims(dispatcher: Dispatcher, claimed: asyncio.Event) -> None:
    original: Callable[..., Any] = dispatcher.claim

    async def claim(**kwargs: Any) -> Any:
        rows = await original(**kwargs)
        claimed.set()
        return rows

    dispatcher.claim = claim  # type: ignore[method-assign]


@pytest.mark.parametrize("round_", range(5))
async def test_stop_right_after_wake_is_prompt(
    tmp_path: Path, sqlite_url: str, round_: int
) -> None:
    """wake() then stop() in one tick: the stop must not be lost (it was, then hung forever)."""
    settings = make_settings(
        tmp_path, sqlite_url, model_server_url="http://127.0.0.1:9", dispatch_poll_interval_s=30
    )
    async for backend in open_backend(settings):
        dispatcher: Dispatcher = backend.ctx.dispatcher
        claimed = asyncio.Event()
        _count_claims(dispatcher, claimed)
        dispatcher.wake()
        async with asyncio.timeout(10):
            await claimed.wait()  # the loop has claimed (nothing) and goes back to waiting
        for _ in range(round_):
            await asyncio.sleep(0)
        dispatcher.wake()
        started = time.monotonic()
        async with asyncio.timeout(20):
            stopped = await dispatcher.stop(timeout_s=3)
        assert stopped, "the dispatch loop ignored its cancellation"
        assert time.monotonic() - started < 3


async def test_lifespan_ends_promptly_with_a_job_in_flight(tmp_path: Path, sqlite_url: str) -> None:
    """The app's whole shutdown (dispatcher, HTTP client, storage, engine) is bounded."""
    # An address that never answers: the send is in flight when the app stops.
    settings = make_settings(
        tmp_path, sqlite_url, model_server_url="http://10.255.255.1:9", ml_api_timeout=60
    )
    gen = open_backend(settings)
    backend = await gen.__anext__()
    await backend.start_job()
    started = time.monotonic()
    async with asyncio.timeout(30):
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
    assert time.monotonic() - started < 20
