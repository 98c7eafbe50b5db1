"""Sliding-window rate limiter, in process.

Each backend replica counts on its own: with N replicas behind a balancer a client gets up to
N times the limit. That is the documented trade-off for needing no shared store.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

from app.services.errors import RateLimited

_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
# Bound the table: beyond this many clients the idle ones are dropped first.
MAX_CLIENTS = 100_000


def parse_rate(spec: str) -> tuple[int, float]:
    """`"5/minute"` → (5, 60.0); also `"10/30second"`."""
    m = _SPEC.match(spec.lower())
    if not m:
        raise ValueError(f"rate limit {spec!r} is not like '5/minute'")
    count, mult, unit = int(m.group(1)), m.group(2), m.group(3)
    return count, _PERIODS[unit] * (int(mult) if mult else 1)


class SlidingWindowLimiter:
    """At most `limit` hits per `window_s` per key; `limit` 0 disables it."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}

    @classmethod
    def from_spec(cls, spec: str) -> SlidingWindowLimiter:
        return cls(*parse_rate(spec))

    def hit(self, key: str, now: float | None = None) -> None:
        """Count one request for `key`, or raise `RateLimited` with the seconds to wait."""
        if self.limit <= 0:
            return
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= MAX_CLIENTS:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = max(1, math.ceil(hits[0] + self.window_s - now))
            raise RateLimited(
                f"too many requests: limit is {self.limit} per {self.window_s:g}s",
                retry_after_s=retry,
            )
        hits.append(now)

    def _evict(self, now: float) -> None:
        stale = [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window_s]
        for k in stale:
            del self._hits[k]
        if len(self._hits) >= MAX_CLIENTS:
            self._hits.clear()
