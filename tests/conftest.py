"""Fixtures for the real services: one private instance per test session, reset per test."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator

import pytest
import redis

from slipway.host.appuser import PREFIX, can_switch_users
from tests.services import Postgres, RedisServer, Sshd


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: twice the cores. The tests spend most of their time waiting for the
    processes they start (a platform, git, builds), so one per core leaves cores idle. Files
    go whole to a worker (``--dist loadfile``): a module's platform starts once."""
    return 2 * (os.cpu_count() or 1)


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


_USERS_BEFORE = pytest.StashKey[set[str]]()


def _app_users() -> set[str]:
    return {entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(PREFIX)}


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note the app users there before the run (a platform of the machine's own keeps its)."""
    if can_switch_users() and not _is_xdist_worker(session.config):
        session.config.stash[_USERS_BEFORE] = _app_users()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The app users the tests' platforms made (run as root, they make one per app) go when
    the run ends: in the controller, once every worker has finished, so that no worker's
    users go while another worker's platform still runs their apps."""
    before = session.config.stash.get(_USERS_BEFORE, None)
    if before is not None:
        for name in sorted(_app_users() - before):
            subprocess.run(["userdel", name], capture_output=True)
