"""Per-client rate limit of request-process, on the `limits` library (moving window).

With `RATE_LIMIT_STORAGE_URL` (e.g. `redis://host:6379/0`) every backend replica counts in one
shared store, so a client gets the limit once, not once per replica; without it each replica
counts in memory. A store that cannot be reached lets requests through (logged): a broken limiter
must not stop all processing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from app.services.errors import RateLimited

logger = logging.getLogger(__name__)

KEY_PREFIX = "ecg-rate"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a client may still do in the current window."""

    limit: int
    remaining: int
    window_s: int
    retry_after_s: int  # 0 when `remaining` > 0


def parse_rate(spec: str) -> RateLimitItem | None:
    """`"5/minute"`, `"10 per 30 seconds"` → a limit; a count of 0 → None (no limit)."""
    try:
        item = parse(spec)
    except ValueError as exc:
        raise ValueError(f"rate limit {spec!r} is not like '5/minute'") from exc
    return item if item.amount > 0 else None


def _storage(url: str | None) -> Storage:
    if not url:
        return MemoryStorage()
    # The async storages are named `async+<scheme>`; redis-py is the client this project pins.
    scheme = url if url.startswith("async+") else f"async+{url}"
    options: dict[str, str | float | bool] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if scheme.startswith(("async+redis", "async+rediss")):
        options["implementation"] = "redispy"
    store = storage_from_string(scheme, wrap_exceptions=True, key_prefix=KEY_PREFIX, **options)
    if not isinstance(store, Storage):
        raise ValueError(f"RATE_LIMIT_STORAGE_URL {url!r} names no async storage")
    return store


class ProcessLimiter:
    """At most `spec` request-process calls per client; `hit` raises `RateLimited`."""

    def __init__(self, spec: str, storage_url: str | None = None) -> None:
        self.item = parse_rate(spec)
        self.storage = _storage(storage_url)
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def hit(self, client: str) -> None:
        """Count one request for `client`, or raise `RateLimited` with the seconds to wait."""
        if self.item is None:
            return
        try:
            allowed = await self._limiter.hit(self.item, "process", client)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(self.item, "process", client)
        except StorageError as exc:
            logger.warning("rate limit store unreachable, request let through: %s", exc)
            return
        raise RateLimited(
            f"too many requests: limit is {self.item}",
            retry_after_s=max(1, math.ceil(stats.reset_time - time.time())),
        )

    async def capacity(self, client: str) -> Capacity | None:
        """The client's remaining requests in the window, without counting one; None: no limit."""
        if self.item is None:
            return None
        window = self.item.get_expiry()
        try:
            stats = await self._limiter.get_window_stats(self.item, "process", client)
        except StorageError as exc:
            logger.warning("rate limit store unreachable: %s", exc)
            return Capacity(self.item.amount, self.item.amount, window, 0)
        retry = 0 if stats.remaining > 0 else max(1, math.ceil(stats.reset_time - time.time()))
        return Capacity(self.item.amount, stats.remaining, window, retry)
