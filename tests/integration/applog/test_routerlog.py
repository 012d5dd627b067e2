"""The router's lines: read from the stream HAProxy's ring sends (split anywhere, on
several connections, cut, too long), and through a real HAProxy under a burst and a reader
restart, none lost; they find their app through the routes hash in a real Redis: a line
that comes just after its app was routed is never dropped, and made-up hosts cost at most
one read per batch of lines."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from slipway.applog.routerlog import RoutedHosts, RouterLog, listen_for_lines
from slipway.applog.stream import AppLog, stream_key
from slipway.host.ports import free_port
from slipway.jobs.connection import sync_redis
from slipway.router import LOG_LINE_MAX
from slipway.router.haproxy import RouterFiles, router_service
from slipway.router.table import Router
from tests.services import wait_until


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
    listener = listen_for_lines(tmp_path / "log.sock")
    router_log = RouterLog(listener, AppLog(sync_redis(redis_url), 1000, 7), hosts.app)
    try:
        router_log.write(lines, time.monotonic())
        assert counting.reads == 1
        router_log.write(lines, time.monotonic())
        assert counting.reads == 2
    finally:
        router_log.stop()
        listener.close()


def line(host: str, n: int) -> bytes:
    return f"{host}\tGET\t/?n={n}\t200\t6\t1\tweb-1-34567\treq{n}\n".encode()


@pytest.fixture
def reader(redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, redis.Redis]]:
    """A RouterLog on a fresh socket, with app.localhost routed to the app uid-app."""
    connection = sync_redis(redis_url)
    connection.delete(stream_key("uid-app"))
    RoutedHosts(connection).set("app.localhost", "uid-app", 1)
    path = Path(tempfile.mkdtemp(prefix="sw-rl-")) / "log.sock"  # short: a socket's path
    listener = listen_for_lines(path)
    router_log = RouterLog(listener, AppLog(connection, 100_000, 7), RoutedHosts(connection).app)
    try:
        yield path, connection
    finally:
        router_log.stop()
        listener.close()
        shutil.rmtree(path.parent)


def stored(connection: redis.Redis) -> list[str]:
    entries: Any = connection.xrange(stream_key("uid-app"))
    return [fields[b"m"].decode() for _, fields in entries]


def test_lines_split_anywhere_and_on_several_connections_are_read_whole(
    reader: tuple[Path, redis.Redis],
) -> None:
    path, connection = reader
    first, second = (socket.socket(socket.AF_UNIX) for _ in range(2))
    for sock in (first, second):
        sock.connect(str(path))
    data = b"".join(line("app.localhost", n) for n in range(100))
    for start in range(0, len(data), 7):  # 7 bytes at a time: lines cut anywhere
        first.sendall(data[start : start + 7])
    second.sendall(line("app.localhost", 100) + b"unknown.localhost\tGET\t/\t404\t0\t1\t-\t-\n")
    wait_until(lambda: len(stored(connection)) == 101, 10, "101 lines")
    time.sleep(0.2)
    lines = stored(connection)
    assert len(lines) == 101  # and not the unknown host's
    assert sorted(lines) == sorted(
        f"GET /?n={n} 200 6 bytes 1 ms web.1 request_id=req{n}" for n in range(101)
    )
    first.close()
    second.close()


def test_a_cut_line_and_a_line_too_long_are_dropped_alone(
    reader: tuple[Path, redis.Redis],
) -> None:
    path, connection = reader
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(line("app.localhost", 1) + line("app.localhost", 2)[:20])  # then cut
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))
        sock.sendall(b"app.localhost\tGET\t/" + b"x" * (LOG_LINE_MAX + 100) + b"\n")
        sock.sendall(line("app.localhost", 3))
    wait_until(lambda: len(stored(connection)) >= 2, 10, "the whole lines")
    time.sleep(0.2)
    assert [entry.split("request_id=")[1] for entry in stored(connection)] == ["req1", "req3"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is missing")
def test_haproxy_loses_no_line_in_a_burst_or_while_the_reader_restarts(redis_url: str) -> None:
    connection = sync_redis(redis_url)
    connection.delete(stream_key("uid-app"))
    RoutedHosts(connection).set("app.localhost", "uid-app", 1)
    directory = Path(tempfile.mkdtemp(prefix="sw-rl-"))
    files = RouterFiles(directory)
    port = free_port()
    service = router_service(directory, "127.0.0.1", port, slots=2, https_port=free_port())
    listener = listen_for_lines(files.log_socket)
    applog = AppLog(connection, 100_000, 7)
    router_log = RouterLog(listener, applog, RoutedHosts(connection).app)
    service.start()
    try:
        Router(files, slots=2).switch("app", [])  # no instance: each request gets a 503

        def burst(count: int) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(count):
                    client.get("/", headers={"Host": "app.localhost"})

        burst(2000)
        router_log.stop()  # as in an upgrade: the lines wait in HAProxy's ring
        burst(500)
        router_log = RouterLog(listener, applog, RoutedHosts(connection).app)
        wait_until(lambda: connection.xlen(stream_key("uid-app")) >= 2500, 20, "every line")
        time.sleep(0.3)
        assert connection.xlen(stream_key("uid-app")) == 2500
    finally:
        router_log.stop()
        service.stop()
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)
