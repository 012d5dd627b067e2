"""TCP ports on this machine: one to hand to a server that will listen on it, and whether
something listens on one.

A port handed out is listened on a moment later, by another process. Taken from the kernel's
ephemeral range (``bind`` to port 0), it could meanwhile become the local port of any
outgoing connection on the host, and the server would fail with "address in use": on a busy
host (a router, builds fetching packages, tests in parallel) that happened. So ports are drawn
at random from below that range, where only listeners live, and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # below are the well-known and registered ports of common services
ATTEMPTS = 100


def _listener_range() -> range | None:
    """Ports from LOWEST up to the ephemeral range, if the kernel leaves enough of them."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(LOWEST, low) if low - LOWEST >= 1_000 else None


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with losing a race)."""
    ports = _listener_range()
    if ports is not None:
        for _ in range(ATTEMPTS):
            port = random.choice(ports)
            if _bindable(host, port):
                return port
    with socket.socket() as sock:  # no room below the ephemeral range: the kernel's pick
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
