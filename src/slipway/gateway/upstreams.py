"""Where a git command runs: the local git-shell (the embedded default), or a repo host over
SSH with the platform key, connections pooled so a push does not pay a second handshake.

Both give the same thing: a running command with a stdin to write to, a stdout and a stderr
to read from, and its exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from slipway.builder.gitshell import ShellError, git_command
from slipway.builder.repositories import RepoHost
from slipway.gateway.commands import GitCommand
from slipway.ssh_ignore import UnpaddedClient

SSH_SESSIONS_PER_CONNECTION = 10  # OpenSSH's MaxSessions


@dataclass
class Exit:
    status: int | None = None
    signal: str | None = None


class Running(Protocol):
    """A command started on an upstream."""

    async def write(self, data: bytes) -> None: ...
    def write_eof(self) -> None: ...
    async def read_stdout(self, size: int) -> bytes: ...
    async def read_stderr(self, size: int) -> bytes: ...
    async def wait(self) -> Exit: ...
    def kill(self) -> None: ...


class Upstream(Protocol):
    async def start(
        self, command: GitCommand, repository: str, git_protocol: str | None
    ) -> Running: ...
    async def close(self) -> None: ...


# -- local -------------------------------------------------------------------------------


class LocalProcess:
    def __init__(self, process: asyncio.subprocess.Process, notice: str | None = None) -> None:
        self.process = process
        self.notice = f"{notice}\n".encode() if notice else b""  # stderr's first line
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        self.stdin, self.stdout, self.stderr = process.stdin, process.stdout, process.stderr

    async def write(self, data: bytes) -> None:
        self.stdin.write(data)
        await self.stdin.drain()

    def write_eof(self) -> None:
        if not self.stdin.is_closing():
            self.stdin.close()

    async def read_stdout(self, size: int) -> bytes:
        return await self.stdout.read(size)

    async def read_stderr(self, size: int) -> bytes:
        if self.notice:
            notice, self.notice = self.notice, b""
            return notice
        return await self.stderr.read(size)

    async def wait(self) -> Exit:
        code = await self.process.wait()
        if code < 0:
            return Exit(signal=signal.Signals(-code).name.removeprefix("SIG"))
        return Exit(status=code)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


PIPE_READ_SIZE = 64 * 1024


def _small_reads(process: asyncio.subprocess.Process) -> None:
    """Read the child's pipes 64 KiB at a time, not asyncio's 256 KiB: a pipe holds 64 KiB,
    and a 256 KiB buffer is allocated with mmap and faulted in afresh on every read, which
    was the gateway's largest cost when streaming a pack."""
    transport = process._transport  # type: ignore[attr-defined]
    for fd in (1, 2):
        pipe = transport.get_pipe_transport(fd)
        if pipe is not None:
            pipe.max_size = PIPE_READ_SIZE


@dataclass
class LocalUpstream:
    """Serves git on this host: the git-shell's checks run in-process (it is our own code),
    then git itself starts with the git-shell's argv, clean environment and limits."""

    host: RepoHost

    async def start(
        self, command: GitCommand, repository: str, git_protocol: str | None
    ) -> Running:
        try:
            run = await asyncio.to_thread(
                git_command,
                self.host,
                command.verb,
                repository,
                command.app,
                git_protocol,
                command.user,
            )
        except ShellError as error:
            return Refusal(f"slipway: {error}")
        process = await asyncio.create_subprocess_exec(
            *run.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=run.env,
            limit=1 << 20,
        )
        with contextlib.suppress(ProcessLookupError):  # it has exited: nothing to limit
            self.host.limit_memory(process.pid)  # before git has read a byte of the push
        _small_reads(process)
        return LocalProcess(process, run.notice)

    async def close(self) -> None:
        pass


class Refusal:
    """A command that ends at once with one line on stderr and status 1."""

    def __init__(self, line: str) -> None:
        self.line = line.encode() + b"\n"
        self.sent = False

    async def write(self, data: bytes) -> None:
        pass

    def write_eof(self) -> None:
        pass

    async def read_stdout(self, size: int) -> bytes:
        return b""

    async def read_stderr(self, size: int) -> bytes:
        if self.sent:
            return b""
        self.sent = True
        return self.line

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

    async def read_stdout(self, size: int) -> bytes:
        return await self.process.stdout.read(size)

    async def read_stderr(self, size: int) -> bytes:
        return await self.process.stderr.read(size)

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
