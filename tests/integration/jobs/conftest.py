"""A client and a raw connection (decoded replies) to the test's private Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from slipway.jobs import Client


@pytest.fixture
def client(redis_url: str) -> Client:
    return Client(redis_url)


@pytest.fixture
def raw(redis_url: str) -> Any:
    """Any: redis-py's types do not follow ``decode_responses``."""
    return redis.Redis.from_url(redis_url, decode_responses=True)
