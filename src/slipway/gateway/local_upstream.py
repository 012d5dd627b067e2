"""git on this host: the git-shell's checks run in-process (it is our own code), then git
itself starts with the git-shell's argv, clean environment and limits.

Its pipes are relayed by callbacks: what git writes goes to the SSH channel as soon as it is
read, with no stream buffer and no task step per chunk in between. A clone's pack comes as
8 KiB side-band packets, thousands of them; going through asyncio's streams cost an 80 MB
clone about a fifth more of the gateway's CPU and thousands of page faults (now a handful).
Reading a pipe stops while the channel holds more than asyncssh's high-water mark (the client
is slower than git), and starts again once the channel has drained."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import cast

import asyncssh

from slipway.builder.gitshell import ShellError, git_command
from slipway.builder.repositories import RepoHost
from slipway.gateway.commands import GitCommand
from slipway.gateway.upstreams import Exit, Output, Refusal, Running, Sent

# asyncssh's default high-water mark for a channel's send buffer: above it, the session is
# paused for writing and ``drain`` waits.
CHANNEL_HIGH_WATER = 64 * 1024
# A pipe holds 64 KiB; asyncio's default read of 256 KiB is allocated with mmap and faulted in
# afresh for every read.
PIPE_READ_SIZE = 64 * 1024


@dataclass
class LocalUpstream:
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
        transport, process = await asyncio.get_running_loop().subprocess_exec(
            lambda: LocalProcess(run.notice),
            *run.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=run.env,
        )
        with contextlib.suppress(ProcessLookupError):  # it has exited: nothing to limit
            self.host.limit_memory(transport.get_pid())  # before git has read a byte of the push
        return process

    async def close(self) -> None:
        pass


class LocalProcess(asyncio.SubprocessProtocol):
    """A running git: ``Running`` for the session, the protocol of its pipes for asyncio."""

    def __init__(self, notice: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.SubprocessTransport | None = None
        # What git writes before the session sends output; stderr starts with the notice.
        self._early: dict[int, list[bytes]] = {1: [], 2: [f"{notice}\n".encode()] if notice else []}
        self._outputs: dict[int, Output] = {}
        self._sent: Sent = lambda count: None
        self._open = {1, 2}
        self._output_done: asyncio.Future[None] = loop.create_future()
        self._exited: asyncio.Future[None] = loop.create_future()
        self._stdin_ready = asyncio.Event()
        self._stdin_ready.set()
        self._draining: set[asyncio.Task[None]] = set()

    # -- what the session calls --------------------------------------------------------

    async def write(self, data: bytes) -> None:
        pipe = self._pipe(0)
        if pipe is None or pipe.is_closing():
            raise BrokenPipeError("git has closed its stdin")
        cast(asyncio.WriteTransport, pipe).write(data)
        await self._stdin_ready.wait()

    def write_eof(self) -> None:
        pipe = self._pipe(0)
        if pipe is not None and not pipe.is_closing():
            pipe.close()

    async def send_output(self, stdout: Output, stderr: Output, sent: Sent) -> None:
        """Send git's stdout and stderr to the channel until both pipes close; ``sent`` counts
        the bytes."""
        self._sent = sent
        self._outputs = {1: stdout, 2: stderr}
        for fd, chunks in self._early.items():
            for chunk in chunks:
                self._send(fd, chunk)
        self._early.clear()
        self._finish_output()
        await self._output_done

    async def wait(self) -> Exit:
        await self._exited
        assert self.transport is not None
        code = self.transport.get_returncode()
        assert code is not None
        if code < 0:
            return Exit(signal=signal.Signals(-code).name.removeprefix("SIG"))
        return Exit(status=code)

    def kill(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            self.transport.kill()

    # -- asyncio's calls -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)
        for fd in (1, 2):
            pipe = self._pipe(fd)
            # asyncio's pipe transports read max_size at a time; uvloop's have no such knob
            # (and read into a buffer of their own).
            if pipe is not None and hasattr(pipe, "max_size"):
                pipe.max_size = PIPE_READ_SIZE

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self._output_done.done():
            return  # the channel failed or the session gave up: nobody reads it
        if not self._outputs:
            self._early[fd].append(data)
        else:
            self._send(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 0:
            self._stdin_ready.set()  # a writer waiting for room finds the pipe closed
            return
        self._open.discard(fd)
        self._finish_output()

    def pause_writing(self) -> None:  # git's stdin is full
        self._stdin_ready.clear()

    def resume_writing(self) -> None:
        self._stdin_ready.set()

    def process_exited(self) -> None:
        if not self._exited.done():
            self._exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.transport.close()  # the process has exited and its pipes are closed

    # -- relaying ------------------------------------------------------------------------

    def _pipe(self, fd: int) -> asyncio.BaseTransport | None:
        return None if self.transport is None else self.transport.get_pipe_transport(fd)

    def _send(self, fd: int, data: bytes) -> None:
        output = self._outputs[fd]
        try:
            output.write(data)
        except (OSError, asyncssh.Error) as error:
            self._fail(error)
            return
        self._sent(len(data))
        if output.channel.get_write_buffer_size() > CHANNEL_HIGH_WATER:
            pipe = cast(asyncio.ReadTransport, self._pipe(fd))
            pipe.pause_reading()
            task = asyncio.ensure_future(self._resume_when_drained(pipe, output))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    async def _resume_when_drained(self, pipe: asyncio.ReadTransport, output: Output) -> None:
        try:
            await output.drain()
        except (OSError, asyncssh.Error) as error:
            self._fail(error)
            return
        if not pipe.is_closing():
            pipe.resume_reading()

    def _finish_output(self) -> None:
        if self._outputs and not self._open and not self._output_done.done():
            self._output_done.set_result(None)

    def _fail(self, error: Exception) -> None:
        if not self._output_done.done():
            self._output_done.set_exception(error)
