"""When to try a failed outbound request again, and when to stop: one type for every retry.

Three senders use it, each with its own settings: the ML server's callbacks to the backend
(`ml_server.callbacks`, jittered), the backend's dispatch to the ML server (`app.services.dispatch`,
a fixed schedule: 5 s then 10 s, as docs/guide.md has it) and the backend's client events
(`app.services.client_webhooks`). A server's `Retry-After` replaces the computed wait.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """`max_attempts` tries in all; after failed attempt n (1-based) wait `delay_s(n)`.

    The wait is `schedule[n-1]` when a schedule is given, else `base_s × 2^(n-1)` capped at
    `max_s`; `jitter` draws it uniformly from [½, 1] of that. A `Retry-After` hint is honoured
    up to `max_retry_after_s` (default `max_s`).
    """

    max_attempts: int
    base_s: float = 1.0
    max_s: float = 3600.0
    jitter: bool = False
    schedule: tuple[float, ...] = ()
    max_retry_after_s: float | None = None

    @classmethod
    def fixed(cls, delays: Sequence[float], *, max_retry_after_s: float) -> Backoff:
        """One attempt plus one retry per delay, waiting exactly those delays."""
        return cls(
            max_attempts=len(delays) + 1,
            schedule=tuple(delays),
            max_retry_after_s=max_retry_after_s,
        )

    @property
    def retries(self) -> int:
        """Attempts after the first."""
        return self.max_attempts - 1

    def exhausted(self, attempt: int) -> bool:
        """True when failed attempt `attempt` (1-based) was the last one allowed."""
        return attempt >= self.max_attempts

    def delay_s(
        self,
        attempt: int,
        *,
        retry_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based) before the next one."""
        if retry_after_s is not None:
            cap = self.max_s if self.max_retry_after_s is None else self.max_retry_after_s
            return min(max(retry_after_s, 0.0), cap)
        if self.schedule:
            return self.schedule[min(max(attempt, 1), len(self.schedule)) - 1]
        ceiling = min(self.max_s, self.base_s * 2.0 ** max(0, attempt - 1))
        if self.jitter:
            return ceiling * (0.5 + (rng or random.Random()).random() / 2)
        return ceiling
