"""The Redis URLs slipway.jobs takes, wherever it opens Redis (worker, clients, API):
``unix://`` (the socket of the Redis ``slipwayd up`` runs), ``redis://``, ``rediss://``."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import redis

from slipway.jobs import AsyncClient, Client
from slipway.jobs.api import ProcessSet, Stats
from slipway.jobs.connection import CONNECT_TIMEOUT, READ_TIMEOUT, connection_options
from slipway.jobs.launcher import Launcher, WorkerConfig
from tests.jobs_support import WorkerProcess, results
from tests.services import UnixRedisServer


@pytest.fixture(scope="module")
def unix_server() -> Iterator[UnixRedisServer]:
    with UnixRedisServer() as server:
        yield server


@pytest.fixture
def not_tls() -> Iterator[str]:
    """A ``rediss://`` URL whose server answers the TLS handshake in plain text."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.sendall(b"-ERR plain text\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"rediss://127.0.0.1:{server.getsockname()[1]}/0"
    server.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone would not, on Linux)
    server.close()
    thread.join(5)


def test_a_worker_process_works_through_a_unix_socket(unix_server: UnixRedisServer) -> None:
    url = unix_server.url
    Client(url).enqueue("default", "record", ["over a unix socket"])
    with WorkerProcess(url) as worker:  # registered: its heartbeat went through the socket
        assert results(url, 1) == [["over a unix socket"]]
        [process] = ProcessSet(url)
        assert process["pid"] == worker.pid
        process.stop()  # as the Web UI does, through the API's connection
        assert worker.wait(10) == 0
        assert worker.output().splitlines()[-1].endswith(" stopped")  # and cleanly
    stats = Stats(url)
    assert (stats.processed, stats.processes_size) == (1, 0)


async def test_the_async_client_works_through_a_unix_socket(
    unix_server: UnixRedisServer,
) -> None:
    client = AsyncClient(unix_server.url)
    try:
        jid = await client.enqueue("unix", "record", [])
        [payload] = await client.redis.lrange("queue:unix", 0, -1)
    finally:
        await client.aclose()
    assert jid.encode() in payload


def test_options_follow_the_scheme() -> None:
    unix = connection_options("unix:///run/redis.sock?db=1")
    assert "socket_keepalive" not in unix  # the unix-socket connection refuses it
    for url in ("redis://:pw@host:6379/0", "rediss://host:6380/0"):
        assert connection_options(url)["socket_keepalive"] is True
    for options in (unix, connection_options("rediss://host")):  # a silent Redis is noticed
        assert options["socket_timeout"] == READ_TIMEOUT
        assert options["socket_connect_timeout"] == CONNECT_TIMEOUT


def test_an_unknown_scheme_is_refused_without_showing_the_url() -> None:
    with pytest.raises(ValueError, match="use redis://, rediss:// or unix://") as raised:
        connection_options("http://:secret@host")
    assert "secret" not in str(raised.value)


def _launcher_ping(url: str) -> None:
    async def ping() -> None:
        launcher = Launcher(WorkerConfig(redis_url=url))
        try:
            await launcher.redis.ping()
        finally:
            await launcher.redis.aclose()

    asyncio.run(ping())


def _async_client_enqueue(url: str) -> None:
    async def enqueue() -> None:
        client = AsyncClient(url)
        try:
            await client.enqueue("default", "record", [])
        finally:
            await client.aclose()

    asyncio.run(enqueue())


@pytest.mark.parametrize(
    "attempt",
    [
        _launcher_ping,
        _async_client_enqueue,
        lambda url: Client(url).enqueue("default", "record", []),
        lambda url: Stats(url),
    ],
    ids=["launcher", "async-client", "client", "api"],
)
def test_rediss_urls_speak_tls(not_tls: str, attempt: Callable[[str], object]) -> None:
    """Each opener gets as far as the TLS handshake, which fails on a plain-text server."""
    with pytest.raises(redis.ConnectionError, match="SSL"):
        attempt(not_tls)
