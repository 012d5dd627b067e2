"""Database tunnels: only to the address the API gives for the app's database."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from pathlib import Path

import asyncssh
import pytest

from slipway.ssh.msg_ignore import UnpaddedClient
from tests.control_support import ApiServer
from tests.gateway_support import RunningGateway, add_app, add_user, with_database


def tunnel(
    gateway: RunningGateway, key: Path, destination: str, data: bytes = b"x"
) -> subprocess.CompletedProcess[bytes]:
    """``ssh -W DESTINATION`` through the gateway, sending ``data`` and reading the answer."""
    return subprocess.run(
        gateway.ssh(key, options=("-W", destination)), input=data, capture_output=True, timeout=60
    )


def test_a_tunnel_reaches_the_apps_database(
    gateway: RunningGateway, api: ApiServer, echo_database: tuple[str, int]
) -> None:
    alice, bob, carol = (add_user(api, name) for name in ("alice", "bob", "carol"))
    add_app(api, "alice", "shop", "bob")
    with_database(api, "alice", "shop", echo_database)
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
    assert b"has no such add-on" in result.stderr
    for destination in ("shop.ad-999:5432", "shop.evil:5432", "shop.ad-1.x:5432"):
        assert tunnel(gateway, alice.key, destination).returncode == 255


def test_a_dead_database_is_reported(gateway: RunningGateway, api: ApiServer) -> None:
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with_database(api, "alice", "shop", ("127.0.0.1", port))
    result = tunnel(gateway, alice.key, "shop:5432")
    assert result.returncode == 255
    assert b"database does not answer" in result.stderr


def test_data_goes_without_padding_packets(
    gateway: RunningGateway,
    api: ApiServer,
    echo_database: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncssh sends an empty MSG_IGNORE before every packet, a defence for CBC ciphers
    that Slipway never offers; neither the gateway nor a client that asks sends them."""
    alice = add_user(api, "alice")
    add_app(api, "alice", "shop")
    with_database(api, "alice", "shop", echo_database)
    payload = os.urandom(300_000)

    async def echo() -> bytes:
        async with asyncssh.connect(
            **gateway.client_options(alice.key), client_factory=UnpaddedClient
        ) as conn:
            reader, writer = await conn.open_connection("shop", 5432, encoding=None)
            writer.write(payload)
            writer.write_eof()
            echoed: bytes = await reader.read()
            return echoed

    caplog.set_level(logging.DEBUG, logger="asyncssh")
    asyncssh.set_debug_level(3)  # log every packet
    try:
        assert gateway.call(echo()) == payload
    finally:
        asyncssh.set_debug_level(1)
    packets = [r.getMessage() for r in caplog.records if "MSG_" in r.getMessage()]
    assert sum("Sent MSG_CHANNEL_DATA" in p for p in packets) >= 2  # both ends, logged
    assert sum("Received MSG_CHANNEL_DATA" in p for p in packets) >= 2
    assert not [p for p in packets if "MSG_IGNORE" in p]
