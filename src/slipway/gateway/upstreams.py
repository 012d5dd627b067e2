"""Where a git command runs: the local git-shell (the embedded default, in
``local_upstream``), or a repo host over SSH with the platform key, connections pooled so a
push does not pay a second handshake.

Both give the same thing: a running command with a stdin to write to, an output sent to the
client's channel, and its exit.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from slipway.gateway.commands import GitCommand
from slipway.ssh.msg_ignore import UnpaddedClient

SSH_SESSIONS_PER_CONNECTION = 10  # OpenSSH's MaxSessions


@dataclass
class Exit:
    status: int | None = None
    signal: str | None = None


Output = asyncssh.SSHWriter[bytes]
Sent = Callable[[int], None]  # told how many bytes went to the client
CHUNK = 64 * 1024


class Running(Protocol):
    """A command started on an upstream."""

    async def write(self, data: bytes) -> None: ...
    def write_eof(self) -> None: ...
    async def send_output(self, stdout: Output, stderr: Output, sent: Sent) -> None:
        """Send the command's stdout and stderr to the client until both end; ``sent``
        counts the bytes."""

    async def wait(self) -> Exit: ...
    def kill(self) -> None: ...


class Upstream(Protocol):
    async def start(
        self, command: GitCommand, repository: str, git_protocol: str | None
    ) -> Running: ...
    async def close(self) -> None: ...


async def pump(read: Callable[[int], Awaitable[bytes]], output: Output, sent: Sent) -> None:
    """Copy a stream to the client's channel until it ends, waiting while the channel is
    full."""
    while data := await read(CHUNK):
        sent(len(data))
        output.write(data)
        await output.drain()


class Refusal:
    """A command that ends at once with one line on stderr and status 1."""

    def __init__(self, line: str) -> None:
        self.line = line.encode() + b"\n"

    async def write(self, data: bytes) -> None:
        pass

    def write_eof(self) -> None:
        pass

    async def send_output(self, stdout: Output, stderr: Output, sent: Sent) -> None:
        stderr.write(self.line)
        sent(len(self.line))

    async def wait(self) -> Exit:
        return Exit(status=1)

    def kill(self) -> None:
        pass


# -- ssh ---------------------------------------------------------------------------------


class RemoteProcess:
    def __init__(self, process: asyncssh.SSHClientProcess[bytes], release: asyncio.Event) -> None:
        self.process = process
        self._release = release

    async def write(self, data: bytes) -> None:
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    def write_eof(self) -> None:
        self.process.stdin.write_eof()

    async def send_output(self, stdout: Output, stderr: Output, sent: Sent) -> None:
        await asyncio.gather(
            pump(self.process.stdout.read, stdout, sent),
            pump(self.process.stderr.read, stderr, sent),
        )

    async def wait(self) -> Exit:
        try:
            result = await self.process.wait(check=False)
        finally:
            self._release.set()
        if result.exit_signal:
            return Exit(signal=result.exit_signal[0])
        return Exit(status=result.exit_status)

    def kill(self) -> None:
        self.process.close()  # closing the channel ends the command on the repo host
        self._release.set()


@dataclass
class PooledConnection:
    connection: asyncssh.SSHClientConnection
    sessions: int = 0


@dataclass
class SshUpstream:
    """Runs the same canonical command on a repo host, over pooled SSH connections."""

    host: str
    port: int
    username: str
    client_key: asyncssh.SSHKey
    known_hosts: str  # a known_hosts file: the repo host's key is always checked
    command_prefix: str = "slipwayd git-shell"
    _pool: list[PooledConnection] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _connection(self) -> PooledConnection:
        async with self._lock:
            self._pool = [c for c in self._pool if not c.connection.is_closed()]
            for pooled in self._pool:
                if pooled.sessions < SSH_SESSIONS_PER_CONNECTION:
                    pooled.sessions += 1
                    return pooled
            connection = await asyncssh.connect(
                self.host,
                self.port,
                username=self.username,
                client_keys=[self.client_key],
                known_hosts=self.known_hosts,
                agent_path=None,
                config=None,
                keepalive_interval=30,
                encryption_algs=FAST_CIPHERS,
                client_factory=UnpaddedClient,
            )
            pooled = PooledConnection(connection, sessions=1)
            self._pool.append(pooled)
            return pooled

    async def start(
        self, command: GitCommand, repository: str, git_protocol: str | None
    ) -> Running:
        pooled = await self._connection()
        line = " ".join([self.command_prefix, *map(shlex.quote, command.argv(repository))])
        env = {"GIT_PROTOCOL": git_protocol} if git_protocol else {}
        try:
            process = await pooled.connection.create_process(line, encoding=None, env=env)
        except BaseException:
            pooled.sessions -= 1
            raise
        released = asyncio.Event()

        async def give_back() -> None:
            await released.wait()
            pooled.sessions -= 1

        asyncio.get_running_loop().create_task(give_back())
        return RemoteProcess(process, released)

    async def close(self) -> None:
        for pooled in self._pool:
            pooled.connection.close()
        self._pool.clear()


# AES-GCM is about twice as fast as chacha20-poly1305 in asyncssh (asyncssh#589), and needs no
# separate MAC. The client's order decides, and OpenSSH puts chacha20 then AES-CTR first: only
# offering GCM makes it the choice.
FAST_CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
