"""Fixtures for the Celery-mode unit tests: the real Redis on 127.0.0.1:6379, a unique prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from ml_server.config import MLSettings
from ml_server.store_redis import RedisJobStore
from tests.support.services import REDIS_URL


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not running on {REDIS_URL}: {exc}")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test alone; every key under it is deleted afterwards."""
    value = f"ecg-test-{uuid.uuid4().hex[:12]}:"
    yield value
    keys = list(redis_client.scan_iter(match=f"{value}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def settings(prefix: str) -> MLSettings:
    return MLSettings(
        ml_broker_url=REDIS_URL,
        ml_redis_prefix=prefix,
        ml_celery_queue=f"{prefix}queue",
        webhook_secret_key="test-secret",
        ml_result_retention_s=600,
        ml_job_lease_s=2.0,
        ml_max_attempts=2,
    )


@pytest.fixture
def store(settings: MLSettings) -> Iterator[RedisJobStore]:
    s = RedisJobStore.from_settings(settings)
    yield s
    s.client.close()
