"""The router's lines find their app through the routes hash in a real Redis: a line that
comes just after its app was routed is never dropped, and made-up hosts cost at most one
read per batch of lines."""

from __future__ import annotations

import time
from pathlib import Path

from slipway.applog.routerlog import RoutedHosts, RouterLog
from slipway.applog.stream import AppLog
from slipway.jobs.connection import sync_redis


class CountingRedis:
    """The real client, counting the reads of the routes hash."""

    def __init__(self, url: str) -> None:
        self.client = sync_redis(url)
        self.reads = 0

    def hgetall(self, key: str) -> object:
        self.reads += 1
        return self.client.hgetall(key)


def test_a_line_just_after_its_app_is_routed_is_kept(redis_url: str) -> None:
    counting = CountingRedis(redis_url)
    hosts = RoutedHosts(counting)  # type: ignore[arg-type]
    runner = RoutedHosts(sync_redis(redis_url))
    assert hosts.app("new.localhost", time.monotonic()) is None  # read: not routed yet
    runner.set("new.localhost", "uid-new", 3)  # what a runner does before the router switch
    assert hosts.app("new.localhost", time.monotonic()) == ("uid-new", 3)  # within 1 ms
    assert counting.reads == 2


def test_made_up_hosts_cost_one_read_per_batch(redis_url: str, tmp_path: Path) -> None:
    counting = CountingRedis(redis_url)
    hosts = RoutedHosts(counting)  # type: ignore[arg-type]
    lines = [f"scan{n}.localhost\tGET\t/\t404\t0\t1\tNOSRV\t-".encode() for n in range(500)]
    router_log = RouterLog(tmp_path / "log.sock", AppLog(sync_redis(redis_url), 1000, 7), hosts.app)
    try:
        router_log.write(lines, time.monotonic())
        assert counting.reads == 1
        router_log.write(lines, time.monotonic())
        assert counting.reads == 2
    finally:
        router_log.stop()
