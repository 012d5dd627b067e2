"""The runner's log shipper against a real Redis: lines in order, split when too long,
capped per instance with one notice, and none lost while Redis is away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from slipway.applog.ship import LogShipper
from slipway.applog.stream import AppLog, stream_key
from slipway.jobs.connection import sync_redis
from tests.services import RedisServer, wait_until


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    with RedisServer(persist=True) as server:
        yield server


def messages(connection: redis.Redis) -> list[str]:
    entries: Any = connection.xrange(stream_key("app1"))
    return [fields[b"m"].decode() for _, fields in entries]


def write(base: Path, text: str) -> None:
    with open(base.with_name(base.name + ".stdout"), "a") as file:
        file.write(text)


def test_nothing_is_lost_while_redis_is_away(persistent_redis: RedisServer, tmp_path: Path) -> None:
    connection = sync_redis(persistent_redis.url)
    shipper = LogShipper(AppLog(connection, 1000, 7), 16_384)
    base = tmp_path / "web-1-1000"
    shipper.watch(base, "app1", "web.1", 1)
    try:
        write(base, "one\ntwo\n")
        wait_until(lambda: messages(connection) == ["one", "two"], 5, "the first lines")
        assert persistent_redis.process is not None
        persistent_redis.process.terminate()
        persistent_redis.process.wait()
        write(base, "three\nfour\n")  # shipping fails meanwhile
        time.sleep(0.5)  # attempts to ship them fail
        persistent_redis.restart()
        wait_until(
            lambda: messages(connection) == ["one", "two", "three", "four"], 10, "the rest, once"
        )
    finally:
        shipper.stop()
        connection.close()


def test_long_lines_split_and_the_rate_cap_notices_once(redis_url: str, tmp_path: Path) -> None:
    connection = sync_redis(redis_url)
    shipper = LogShipper(AppLog(connection, 1000, 7), 10)
    base = tmp_path / "worker-1-1001"
    shipper.watch(base, "app1", "worker.1", 1)
    try:
        write(base, "é" * 6_000 + "\n")  # 12,000 bytes: two parts, cut between characters
        wait_until(lambda: len(messages(connection)) == 2, 5, "the split line")
        assert [len(m.encode()) for m in messages(connection)] == [10_000, 2_000]
        write(base, "".join(f"line {i}\n" for i in range(30)))
        wait_until(lambda: len(messages(connection)) == 11, 5, "the capped lines")
        found = messages(connection)[2:]
        assert found[:8] == [f"line {i}" for i in range(8)]  # 10 a minute, 2 were the split line
        assert found[8:] == [
            "worker.1 wrote over 10 lines this minute: lines are dropped until the minute is over"
        ]
        shipper.close(base)
        wait_until(lambda: not base.with_name(base.name + ".stdout").exists(), 5, "its files gone")
    finally:
        shipper.stop()
        connection.close()
