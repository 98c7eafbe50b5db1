"""The request-process limiter on the `limits` library: one count across replicas through a real
Redis, memory per replica without it, a dead store lets requests through, limits parse or fail."""

from __future__ import annotations

import uuid

import pytest

from app.services.errors import RateLimited
from app.services.rate_limit import ProcessLimiter, parse_rate
from tests.support.net import free_port
from tests.support.services import REDIS_URL


async def _hits(limiter: ProcessLimiter, client: str, n: int) -> list[bool]:
    out = []
    for _ in range(n):
        try:
            await limiter.hit(client)
            out.append(True)
        except RateLimited:
            out.append(False)
    return out


async def test_replicas_share_one_count_through_redis() -> None:
    a, b = ProcessLimiter("4/minute", REDIS_URL), ProcessLimiter("4/minute", REDIS_URL)
    client = f"10.0.0.{uuid.uuid4().hex}"  # a fresh key: runs never see each other's counts
    assert await _hits(a, client, 2) + await _hits(b, client, 2) == [True] * 4
    with pytest.raises(RateLimited) as refused:
        await b.hit(client)
    assert 1 <= refused.value.retry_after_s <= 60
    assert (await a.capacity(client)).remaining == 0  # type: ignore[union-attr]
    assert await _hits(a, f"other-{client}", 1) == [True]


async def test_without_a_store_each_replica_counts_alone() -> None:
    a, b = ProcessLimiter("2/minute"), ProcessLimiter("2/minute")
    assert await _hits(a, "c", 3) == [True, True, False]
    assert await _hits(b, "c", 2) == [True, True]
    cap = await b.capacity("c")
    assert cap is not None and cap.remaining == 0 and 1 <= cap.retry_after_s <= 60


async def test_unreachable_store_lets_requests_through() -> None:
    dead = ProcessLimiter("1/minute", f"redis://127.0.0.1:{free_port()}/0")
    assert await _hits(dead, "c", 3) == [True] * 3
    cap = await dead.capacity("c")
    assert cap is not None and cap.remaining == 1


def test_limit_specs() -> None:
    item = parse_rate("5/minute")
    assert item is not None and item.amount == 5 and item.get_expiry() == 60
    thirty = parse_rate("10 per 30 seconds")
    assert thirty is not None and thirty.get_expiry() == 30
    assert parse_rate("0/minute") is None
    with pytest.raises(ValueError, match="not like"):
        parse_rate("lots")
