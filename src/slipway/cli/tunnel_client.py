"""The SSH side of `slipway db-tunnel`: one asyncssh connection to the gateway, made again
when it drops, and a ``direct-tcpip`` channel per local connection."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import sys
from pathlib import Path
from typing import Any

import asyncssh

from slipway.cli.errors import CliError
from slipway.ssh.msg_ignore import UnpaddedClient
from slipway.ssh.tcp_relay import ChannelEnd, SocketEnd

RECONNECT_EVERY = (1, 2, 5, 10)  # seconds between attempts, the last one repeated
KNOWN_HOSTS = Path("~/.ssh/known_hosts")
# Larger than SSH's usual 32 KiB packets: the gateway sends fewer, and each costs Python
# the same whatever its size.
PACKET = 256 * 1024
WINDOW = 8 * 1024 * 1024
FAST_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
]
# OpenSSH's order: the key asked about is the one ssh would show.
HOST_KEY_ORDER = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD = -1, -2


def keep_freed_memory() -> None:
    """Have glibc keep freed memory for the next packet instead of giving it back.

    Every packet is a fresh buffer of up to 256 KiB. With glibc's defaults the heap was
    trimmed and grown again and again, and each new page faulted in: the first 200 MB COPY
    through a new tunnel caused 22,000 to 130,000 page faults and took 1.2 to 2 times the
    CPU of the next ones; with this, about 2,000 and hardly more CPU. A few MB stay kept.
    """
    if platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(None)
        libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)
        libc.mallopt(M_TOP_PAD, 4 << 20)


class Tunnel:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        destination: str,
        destination_port: int,
        identity: Path | None,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.destination, self.destination_port = destination, destination_port
        self.identity = identity
        self.connection: asyncssh.SSHClientConnection | None = None
        self._connecting = asyncio.Lock()
        self._opening: set[asyncio.Task[None]] = set()

    async def serve(self, local_port: int, ready: Any) -> None:
        await self.connect()
        try:
            server = await asyncio.get_running_loop().create_server(
                self._accepted, "127.0.0.1", local_port
            )
        except OSError as error:
            raise CliError(
                f"cannot listen on 127.0.0.1:{local_port}: {error.strerror}; choose another "
                "port with -p (0: any free one)"
            ) from None
        ready(server.sockets[0].getsockname()[1])
        async with server:
            await asyncio.gather(server.serve_forever(), self._keep_connected())

    async def connect(self) -> asyncssh.SSHClientConnection:
        """The connection, made again if it dropped."""
        async with self._connecting:
            if self.connection is not None and not self.connection.is_closed():
                return self.connection
            options: dict[str, Any] = {
                "username": self.username,
                "keepalive_interval": 15,
                "keepalive_count_max": 3,
                # AES-GCM first: one call into OpenSSL per packet, where asyncssh's
                # chacha20-poly1305 makes several (its default puts that one first).
                "encryption_algs": FAST_CIPHERS,
                "client_factory": UnpaddedClient,
            }
            if self.identity is not None:
                options["client_keys"] = [str(self.identity)]
            try:
                self.connection = await asyncssh.connect(self.host, self.port, **options)
            except asyncssh.HostKeyNotVerifiable:
                await trust_on_first_use(self.host, self.port)
                self.connection = await asyncssh.connect(self.host, self.port, **options)
            except asyncssh.PermissionDenied:
                raise CliError(
                    "the gateway refused your keys: add yours with `slipway keys add`"
                ) from None
            except (OSError, asyncssh.Error) as error:
                raise CliError(
                    f"cannot reach the gateway at {self.host}:{self.port}: {error}"
                ) from None
            return self.connection

    async def _keep_connected(self) -> None:
        """Reconnect in the background after a drop, so the next connection is quick."""
        attempt = 0
        while True:
            connection = self.connection
            if connection is not None:
                await connection.wait_closed()
                print("slipway: connection to the gateway lost; reconnecting", file=sys.stderr)
            try:
                await self.connect()
                if attempt:
                    print("slipway: reconnected", file=sys.stderr)
                attempt = 0
            except CliError as error:
                delay = RECONNECT_EVERY[min(attempt, len(RECONNECT_EVERY) - 1)]
                print(f"slipway: {error.message}; again in {delay} s", file=sys.stderr)
                attempt += 1
                self.connection = None
                await asyncio.sleep(delay)

    def _accepted(self) -> SocketEnd:
        """A local connection: what it sends is held until its channel is open."""
        local = SocketEnd()
        opening = asyncio.get_running_loop().create_task(self._open_channel(local))
        self._opening.add(opening)
        opening.add_done_callback(self._opening.discard)
        return local

    async def _open_channel(self, local: SocketEnd) -> None:
        try:
            connection = await self.connect()
            await connection.create_connection(
                lambda: ChannelEnd(local),
                self.destination,
                self.destination_port,
                window=WINDOW,
                max_pktsize=PACKET,
            )
        except asyncssh.ChannelOpenError as refusal:
            print(f"slipway: the gateway refused the tunnel: {refusal.reason}", file=sys.stderr)
            local.close()
        except (CliError, OSError, asyncssh.Error) as error:
            print(f"slipway: {getattr(error, 'message', error)}", file=sys.stderr)
            local.close()


async def trust_on_first_use(host: str, port: int) -> None:
    """Ask, as ssh does, before trusting a gateway seen for the first time; remember it."""
    try:
        key = await asyncssh.get_server_host_key(host, port, server_host_key_algs=HOST_KEY_ORDER)
    except (OSError, asyncssh.Error) as error:
        raise CliError(f"cannot reach the gateway at {host}:{port}: {error}") from None
    if key is None:
        raise CliError(f"the gateway at {host}:{port} showed no host key")
    await asyncio.to_thread(accept_host_key, host if port == 22 else f"[{host}]:{port}", key)


def accept_host_key(name: str, key: asyncssh.SSHKey) -> None:
    fingerprint = key.get_fingerprint("sha256")
    path = KNOWN_HOSTS.expanduser()
    with contextlib.suppress(OSError):
        if any(line.split(" ", 1)[0] == name for line in path.read_text().splitlines()):
            raise CliError(
                f"the gateway {name}'s host key does not match {path}: it is now "
                f"{fingerprint}. If the platform's keys changed, remove the old line; if not, "
                "someone may be in between: do not connect"
            )
    print(
        f"The gateway {name} is not in {KNOWN_HOSTS}.\n"
        f"Its {key.get_algorithm()} key fingerprint is {fingerprint}\n"
        "(`slipwayd up` prints the fingerprints of its keys when it starts.)",
        file=sys.stderr,
    )
    if not sys.stdin.isatty():
        raise CliError(
            f"unknown host key {fingerprint}: run once in a terminal to accept it, or add "
            f"the gateway to {KNOWN_HOSTS}"
        )
    answer = input("Are you sure you want to continue connecting (yes/no)? ").strip().lower()
    if answer != "yes":
        raise CliError("host key not accepted: nothing was opened")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a") as known_hosts:
        known_hosts.write(line)
    print(f"Added {name} to {path}.", file=sys.stderr)
