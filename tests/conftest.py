"""Fixtures for the real services: one private instance per test session, reset per test."""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Iterator

import pytest
import redis

from slipway.host.appuser import PREFIX, can_switch_users
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


def _app_users() -> set[str]:
    return {entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(PREFIX)}


@pytest.fixture(scope="session", autouse=True)
def no_app_users_left_behind() -> Iterator[None]:
    """The app users the tests' platforms made (run as root, they make one per app) go when
    the session ends; users that were there before, a platform of the machine's own, stay."""
    before = _app_users() if can_switch_users() else set()
    yield
    if can_switch_users():
        for name in sorted(_app_users() - before):
            subprocess.run(["userdel", name], capture_output=True)
