"""Fixtures for the real services: one private instance per test session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.services import Postgres, RedisServer, Sshd


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A private Redis, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with Sshd() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with Postgres() as server:
        yield server
