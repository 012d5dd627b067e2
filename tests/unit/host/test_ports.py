"""Ports handed to servers come from below the kernel's ephemeral range, free when given."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from slipway.host import ports
from slipway.host.ports import free_port


def ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_ports_are_below_the_ephemeral_range_and_free() -> None:
    for _ in range(50):
        port = free_port()
        assert ports.LOWEST <= port < ephemeral_low()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: it binds


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        # Then candidates of which one at least is free (other tests' servers may hold some).
        others = [port for port in range(20_123, 20_223) if port != taken]
        picks = iter([taken, taken, *others])
        monkeypatch.setattr(random, "choice", lambda _: next(picks))
        assert free_port() in others


@pytest.mark.parametrize("content", ["10500 60999", "1024 60999", "garbage", ""])
def test_without_room_below_the_range_the_kernel_picks(
    content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A range starting under LOWEST + 1,000, or one that cannot be read: bind to port 0."""
    fake = tmp_path / "ip_local_port_range"
    fake.write_text(content)
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", fake)
    monkeypatch.setattr(random, "choice", lambda _: pytest.fail("drew from no range"))
    port = free_port()
    assert port >= 1024
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
