"""`ecg_serving.backoff.Backoff`, the one retry policy: each sender's settings give the waits
its documentation promises (callbacks jittered, dispatch the guide's 5 s then 10 s, client
events doubling up to an hour), and `Retry-After` replaces the computed wait, capped."""

from __future__ import annotations

import random

from ecg_serving.backoff import Backoff


def test_exponential_doubles_up_to_the_ceiling() -> None:
    backoff = Backoff(max_attempts=8, base_s=5.0, max_s=3600.0)
    assert [backoff.delay_s(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert backoff.delay_s(30) == 3600.0
    assert not backoff.exhausted(7) and backoff.exhausted(8)


def test_jitter_stays_between_half_and_the_full_wait() -> None:
    backoff = Backoff(max_attempts=8, base_s=1.0, max_s=60.0, jitter=True)
    rng = random.Random(7)
    for attempt in range(1, 9):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert ceiling / 2 <= backoff.delay_s(attempt, rng=rng) <= ceiling


def test_a_fixed_schedule_is_one_attempt_plus_one_per_delay() -> None:
    backoff = Backoff.fixed([5.0, 10.0], max_retry_after_s=600.0)
    assert backoff.max_attempts == 3 and backoff.retries == 2
    assert [backoff.delay_s(1), backoff.delay_s(2)] == [5.0, 10.0]
    assert not backoff.exhausted(2) and backoff.exhausted(3)
    assert Backoff.fixed([], max_retry_after_s=600.0).exhausted(1)


def test_retry_after_replaces_the_wait_capped() -> None:
    fixed = Backoff.fixed([5.0], max_retry_after_s=600.0)
    assert fixed.delay_s(1, retry_after_s=30.0) == 30.0
    assert fixed.delay_s(1, retry_after_s=86_400.0) == 600.0
    exponential = Backoff(max_attempts=3, base_s=1.0, max_s=60.0, jitter=True)
    assert exponential.delay_s(1, retry_after_s=120.0) == 60.0  # capped at max_s by default
    assert exponential.delay_s(1, retry_after_s=-1.0) == 0.0
