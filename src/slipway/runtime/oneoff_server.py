"""The runner's WebSocket server for `slipway run`: the API connects to it with the shared
secret and sends the request (frames in slipway.wire.oneoff_frames), then uploads; the server
starts the one-off (slipway.runtime.oneoffs) and relays its terminal or pipes until the
process exits, the client goes, or both stay silent too long."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import shutil
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from slipway.runtime.oneoffs import OneOff, OneOffs, Refused, exit_code, set_terminal_size
from slipway.wire import oneoff_frames as frames

log = logging.getLogger("slipway.runtime")

REQUEST_TIMEOUT = 30.0  # seconds the API has to send the request and the uploads
OUTPUT_GRACE = 1.0  # seconds to read what is left once the process has exited


class OneOffServer:
    def __init__(self, oneoffs: OneOffs, secret: str) -> None:
        self.oneoffs = oneoffs
        self.secret = secret
        self.port = 0
        self.staging = oneoffs.settings.data_dir / "runner" / "uploads"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(mode=0o700)
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="one-offs", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the one-off server did not start")

    # -- the server ------------------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        try:
            self._server = await serve(
                self._session,
                self.oneoffs.settings.runner_address,
                self.oneoffs.settings.run_port,
                process_request=self._authenticate,
                max_size=frames.MAX_FRAME,
                compression=None,  # deflate costs more than it saves on a local network
                ping_interval=20,
                ping_timeout=60,
            )
        except OSError as error:
            log.error("the one-off server cannot listen: %s", error)
            self._ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._server.wait_closed()

    def _authenticate(self, connection: ServerConnection, request: Request) -> Response | None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not given or not hmac.compare_digest(given.encode(), self.secret.encode()):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "the shared secret is needed\n")
        return None

    def stop_accepting(self) -> None:
        """A new runner takes new one-offs; this one serves its own until they end."""
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close, False)

    # -- a session -------------------------------------------------------------------------

    async def _session(self, ws: ServerConnection) -> None:
        one_off: OneOff | None = None
        staged: Path | None = None
        try:
            request = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
            staged = await self._receive_uploads(ws, request.get("files") or [])
            one_off = await asyncio.to_thread(self.oneoffs.prepare, request)
            one_off.staged = staged
            await self.oneoffs.start(one_off, request, staged)
        except (Refused, OSError, ValueError, KeyError, TimeoutError, ConnectionClosed) as error:
            log.warning("one-off refused: %s", error)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frames.status(error=str(error) or type(error).__name__))
            if one_off is not None:
                await self.oneoffs.end(one_off)
            elif staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            return
        if one_off.detached:
            self._loop.create_task(self.oneoffs.wait_detached(one_off))
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frames.status(started=one_off.name))
            return
        code = None
        try:
            await ws.send(frames.status(started=one_off.name))
            code = await self._attach(ws, one_off)
        except ConnectionClosed:
            pass
        finally:
            await self.oneoffs.end(one_off)
        with contextlib.suppress(ConnectionClosed):
            if code is not None:
                await ws.send(frames.status(exit=code))

    async def _receive_uploads(
        self, ws: ServerConnection, files: list[dict[str, Any]]
    ) -> Path | None:
        if not files:
            return None
        names = [os.path.basename(str(entry["name"])) for entry in files]
        sizes = [int(entry["size"]) for entry in files]
        if any(n in ("", ".", "..") for n in names) or len(set(names)) < len(names):
            raise Refused("invalid upload names: each file needs a name of its own")
        if min(sizes) < 0 or sum(sizes) > frames.MAX_UPLOAD:
            raise Refused(f"uploads are limited to {frames.MAX_UPLOAD // 2**20} MB")
        staged = self.staging / secrets.token_hex(8)
        await asyncio.to_thread(staged.mkdir, 0o700)
        for name, left in zip(names, sizes, strict=True):
            target = await asyncio.to_thread(open, staged / name, "xb")
            try:
                while left > 0:
                    message = await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT)
                    channel, data = frames.parse(message if isinstance(message, bytes) else b"")
                    if channel != frames.UPLOAD or len(data) > left:
                        raise Refused("the uploads do not match their announced sizes")
                    await asyncio.to_thread(target.write, data)
                    left -= len(data)
            finally:
                target.close()
        return staged

    # -- attached ----------------------------------------------------------------------------

    async def _attach(self, ws: ServerConnection, one_off: OneOff) -> int | None:
        """Relay until the process exits (its status) or the client goes (None)."""
        process = one_off.process
        assert process is not None
        loop = asyncio.get_running_loop()
        terminal = one_off.terminal
        if terminal is not None:  # each pipe transport closes its own copy
            stdin_writer = await _pipe_writer(loop, os.dup(terminal))
            outputs = [await _pipe_reader(loop, os.dup(terminal))]
        else:
            assert process.stdin is not None
            assert process.stdout is not None
            assert process.stderr is not None
            stdin_writer = process.stdin
            outputs = [process.stdout, process.stderr]
        pumps = [
            loop.create_task(self._pump(ws, one_off, reader, channel))
            for reader, channel in zip(outputs, (frames.STDOUT, frames.STDERR), strict=False)
        ]
        inputs = loop.create_task(self._take_input(ws, one_off, stdin_writer, terminal))
        idle = loop.create_task(self._idle_watch(ws, one_off))
        exited = loop.create_task(process.wait())
        try:
            done, _ = await asyncio.wait({exited, inputs}, return_when=asyncio.FIRST_COMPLETED)
            if exited not in done:
                return None  # the client went away
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pumps), OUTPUT_GRACE)
            return exit_code(exited.result())
        finally:
            for task in (*pumps, inputs, idle):
                task.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                stdin_writer.close()

    async def _pump(
        self,
        ws: ServerConnection,
        one_off: OneOff,
        reader: asyncio.StreamReader,
        channel: int,
    ) -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            while data := await reader.read(frames.CHUNK):
                one_off.touch()
                await ws.send(frames.frame(channel, data))

    async def _take_input(
        self,
        ws: ServerConnection,
        one_off: OneOff,
        writer: asyncio.StreamWriter,
        terminal: int | None,
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if not isinstance(message, bytes) or not message:
                    continue
                channel, data = frames.parse(message)
                one_off.touch()
                if channel == frames.STDIN and data:
                    writer.write(data)
                    with contextlib.suppress(OSError):
                        await writer.drain()
                elif channel == frames.STDIN and terminal is None:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                elif channel == frames.RESIZE and terminal is not None:
                    size = json.loads(data)
                    set_terminal_size(terminal, size.get("cols"), size.get("rows"))

    async def _idle_watch(self, ws: ServerConnection, one_off: OneOff) -> None:
        timeout = self.oneoffs.settings.run_idle_timeout
        while True:
            await asyncio.sleep(min(timeout / 4, 30.0))
            if time.monotonic() - one_off.last_activity > timeout:
                message = f"{one_off.name} stopped: no input or output for {timeout:g} s"
                self.oneoffs.event(one_off, message)
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(frames.status(error=message))
                await ws.close()
                return


async def _pipe_reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=frames.CHUNK)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


async def _pipe_writer(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)
