"""Database tunnels: only to the address the API gives for the app's database."""

from __future__ import annotations

import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.store import accounts, apps
from tests.control_support import ApiServer
from tests.gateway_support import RunningGateway, add_app, add_user


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, int]]:
    """A stand-in database: a TCP echo server."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield str(host), int(port)
    server.shutdown()


def with_database(api: ApiServer, app: str, address: tuple[str, int]) -> None:
    with api.database.session() as session:
        found = apps.app_for(session, accounts.user_named(session, "alice"), app, apps.Action.READ)
        apps.add_database(session, found, "postgresql", *address)


def tunnel(
    gateway: RunningGateway, key: Path, destination: str, data: bytes = b"x"
) -> subprocess.CompletedProcess[bytes]:
    """``ssh -W DESTINATION`` through the gateway, sending ``data`` and reading the answer."""
    return subprocess.run(
        gateway.ssh(key, options=("-W", destination)), input=data, capture_output=True, timeout=60
    )


def test_a_tunnel_reaches_the_apps_database(
    gateway: RunningGateway, api: ApiServer, database: tuple[str, int]
) -> None:
    alice, bob, carol = (add_user(api, name) for name in ("alice", "bob", "carol"))
    add_app(api, "alice", "shop", "bob")
    with_database(api, "shop", database)
    payload = b"SELECT 1;\n" * 50_000  # half a megabyte, both ways
    for user, destination in ((alice, "shop:5432"), (bob, "shop.db:1")):
        result = tunnel(gateway, user.key, destination, payload)
        assert result.returncode == 0, result.stderr
        assert result.stdout == payload
    refused = tunnel(gateway, carol.key, "shop:5432")
    assert refused.returncode == 255 and b"open failed" in refused.stderr


def test_an_app_without_a_database_has_no_tunnel(gateway: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    result = tunnel(gateway, alice.key, "shop:5432")
    assert result.returncode == 255
    assert b"no database" in result.stderr


def test_a_dead_database_is_reported(gateway: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with_database(api, "shop", ("127.0.0.1", port))
    result = tunnel(gateway, alice.key, "shop:5432")
    assert result.returncode == 255
    assert b"database does not answer" in result.stderr
