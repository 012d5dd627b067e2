"""One-off processes (`slipway run`): the runner takes them from the API over a WebSocket
(frames in slipway.wire.oneoff_frames) on a port of its own, published with its heartbeat; the
API authenticates the user and relays. A one-off runs the app's current release as the
app's user, in a cgroup of its own, with a pseudo-terminal or with three pipes.

The API reaches the runner (as Kubernetes' API server reaches the kubelet), not the
reverse: a session then needs no pairing between API servers, and costs one hop.

A one-off lives as long as its session: the session's end (the client went away) stops
it, and so does silence (no input, no output) for SLIPWAY_RUN_IDLE_TIMEOUT. A detached one
is not attached: its output goes to the app's log as ``run.N``. A runner that is replaced
(an upgrade) serves its one-offs until they end; `slipwayd up` stops what is left when the
platform stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import json
import logging
import os
import pty
import secrets
import shutil
import signal
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import redis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from slipway.builder.platform import PlatformApi
from slipway.fleet import processes
from slipway.host.appuser import AppUser, ensure_app_user
from slipway.runtime import releases
from slipway.runtime.cgroups import SIZES, Group
from slipway.runtime.instances import Instance, launcher
from slipway.runtime.state import still_running
from slipway.wire import oneoff_frames as frames

if TYPE_CHECKING:
    from slipway.runtime.runner import Runner

log = logging.getLogger("slipway.runtime")

REQUEST_TIMEOUT = 30.0  # seconds the API has to send the request and the uploads
STOP_GRACE = 5.0  # seconds from SIGHUP/SIGTERM to SIGKILL
OUTPUT_GRACE = 1.0  # seconds to read what is left once the process has exited
PIDS = "oneoffs"  # DATA_DIR/runner/oneoffs/NAME.json: what `up` stops with the platform
# Uploads: a tmpfs of the one-off's own on /tmp/uploads (a mount namespace of its own), filled
# by root from the runner's copy, then handed to the app's user.
UPLOADS = (
    'mkdir -p /tmp/uploads && mount -t tmpfs -o "size=$3,mode=0700" slipway-uploads /tmp/uploads'
    ' && cp -R "$1"/. /tmp/uploads/ && chown -R "$2" /tmp/uploads && shift 3 && exec "$@"'
)


class Refused(Exception):
    """A request the runner cannot run; the message goes to the user."""


@dataclass
class OneOff:
    """One session's process."""

    app: str
    app_uid: str
    version: int
    index: int
    command: str
    tty: bool
    detached: bool
    directory: Path  # the release, unpacked
    user: AppUser | None
    started_at: float = field(default_factory=time.time)
    process: asyncio.subprocess.Process | None = None
    group: Group | None = None
    port: int = 0
    terminal: int | None = None  # the pseudo-terminal's primary side
    log_base: Path | None = None  # a detached one's output files
    staged: Path | None = None  # its uploads, until it ends (it copies them as it starts)
    last_activity: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return f"run.{self.index}"

    def touch(self) -> None:
        self.last_activity = time.monotonic()


class OneOffServer:
    def __init__(self, runner: Runner, secret: str) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.secret = secret
        self.live: dict[str, OneOff] = {}  # by app_uid/name
        self.port = 0
        self.pids_dir = self.settings.data_dir / "runner" / PIDS
        self.pids_dir.mkdir(mode=0o700, exist_ok=True)
        self.staging = self.settings.data_dir / "runner" / "uploads"
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
                self.settings.runner_address,
                self.settings.run_port,
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

    def wait_for_sessions(self) -> None:
        while self.live:
            time.sleep(0.2)

    def versions_in_use(self, app_uid: str) -> set[int]:
        return {o.version for o in list(self.live.values()) if o.app_uid == app_uid}

    # -- a session -------------------------------------------------------------------------

    async def _session(self, ws: ServerConnection) -> None:
        one_off: OneOff | None = None
        staged: Path | None = None
        try:
            request = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
            staged = await self._receive_uploads(ws, request.get("files") or [])
            one_off = await asyncio.to_thread(self._prepare, request)
            one_off.staged = staged
            await self._start(one_off, request, staged)
        except (Refused, OSError, ValueError, KeyError, TimeoutError, ConnectionClosed) as error:
            log.warning("one-off refused: %s", error)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frames.status(error=str(error) or type(error).__name__))
            if one_off is not None:
                await self._end(one_off)
            elif staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            return
        if one_off.detached:
            self._loop.create_task(self._watch_detached(one_off))
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
            await self._end(one_off)
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

    def _prepare(self, request: dict[str, Any]) -> OneOff:
        """The release unpacked, the app's user, a number (run.N) and a cgroup."""
        release = request["release"]
        app_uid = release["app_uid"]
        slug = self.settings.data_dir / "slugs" / app_uid / f"{release['slug_id']}.tar.gz"
        if not slug.exists():
            PlatformApi.from_settings(self.settings).download_slug(
                app_uid, release["slug_id"], slug
            )
        user = ensure_app_user(app_uid)
        version = int(release["version"])
        directory = releases.unpack(self.runner.releases_dir, app_uid, version, slug, user)
        index = int(self.runner.redis.incr(f"slipway:run:{app_uid}"))
        one_off = OneOff(
            app=release["app"],
            app_uid=app_uid,
            version=version,
            index=index,
            command=str(request["command"]),
            tty=bool(request.get("tty")),
            detached=bool(request.get("detached")),
            directory=directory,
            user=user,
        )
        size = request.get("size") or self.settings.instance_size
        if size not in SIZES:
            raise Refused(f"unknown size {size!r}: use {', '.join(SIZES)}")
        if self.runner.cgroups is not None:
            one_off.group = self.runner.cgroups.create(f"{app_uid}-run-{index}", SIZES[size])
        one_off.port = self.runner.allocate_port()
        self.live[f"{app_uid}/{one_off.name}"] = one_off
        return one_off

    async def _start(self, one_off: OneOff, request: dict[str, Any], staged: Path | None) -> None:
        user = one_off.user
        env = self._environment(one_off, request, staged)
        argv = launcher(one_off.command, user, one_off.group)
        if staged is not None and user is not None:
            size = sum(int(f["size"]) for f in request["files"]) + 2**20
            argv = [
                *("unshare", "--mount", "--propagation", "private"),
                *("/bin/bash", "-c", UPLOADS, "slipway-uploads", str(staged)),
                *(f"{user.uid}:{user.gid}", str(size), *argv),
            ]
        opened: list[int] = []  # ours to close once the process has its copies
        stdio: tuple[Any, Any, Any]
        if one_off.tty:
            primary, secondary = pty.openpty()
            one_off.terminal = primary
            opened.append(secondary)
            _set_size(secondary, request.get("cols"), request.get("rows"))
            argv = ["setsid", "--ctty", *argv]  # the terminal is its controlling one
            stdio = (secondary, secondary, secondary)
        elif one_off.detached:
            base = self.runner.logs_dir / one_off.app_uid / f"run-{one_off.index}-{one_off.port}"
            self.runner.logs.watch(base, one_off.app_uid, one_off.name, one_off.version)
            one_off.log_base = base
            for stream in ("stdout", "stderr"):
                path = base.with_name(f"{base.name}.{stream}")
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                opened.append(await asyncio.to_thread(os.open, path, flags, 0o600))
            stdio = (asyncio.subprocess.DEVNULL, opened[0], opened[1])
        else:
            stdio = (asyncio.subprocess.PIPE,) * 3
        try:
            one_off.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                cwd=one_off.directory,
                env=env,
                start_new_session=not one_off.tty,  # setsid makes a tty's session
                umask=0o077,
                limit=frames.CHUNK,
            )
        finally:
            for descriptor in opened:
                os.close(descriptor)
        self._record(one_off)
        user_name = request.get("user") or "someone"
        self.runner.logs.event(
            one_off.app_uid,
            f"{one_off.name} started by {user_name}: {one_off.command}"
            + (" (detached)" if one_off.detached else ""),
            one_off.name,
            one_off.version,
        )

    def _environment(
        self, one_off: OneOff, request: dict[str, Any], staged: Path | None
    ) -> dict[str, str]:
        release = request["release"]
        instance = Instance(
            one_off.app, one_off.app_uid, one_off.version, "run", one_off.index, "", one_off.port
        )
        env = instance.environment(dict(release["config"]), release["commit"], one_off.directory)
        env.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
        if one_off.tty:
            env["TERM"] = str(request.get("term") or "xterm-256color")
        if staged is not None:  # without root, no mount namespace: the runner's copy
            env["UPLOADS"] = "/tmp/uploads" if one_off.user else str(staged)  # noqa: S108
        return env

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
                    _set_size(terminal, size.get("cols"), size.get("rows"))

    async def _idle_watch(self, ws: ServerConnection, one_off: OneOff) -> None:
        timeout = self.settings.run_idle_timeout
        while True:
            await asyncio.sleep(min(timeout / 4, 30.0))
            if time.monotonic() - one_off.last_activity > timeout:
                message = f"{one_off.name} stopped: no input or output for {timeout:g} s"
                self.runner.logs.event(one_off.app_uid, message, one_off.name, one_off.version)
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(frames.status(error=message))
                await ws.close()
                return

    # -- the end -----------------------------------------------------------------------------

    async def _watch_detached(self, one_off: OneOff) -> None:
        assert one_off.process is not None
        await one_off.process.wait()
        if one_off.log_base is not None:
            self.runner.logs.close(one_off.log_base)
        await self._end(one_off)

    async def _end(self, one_off: OneOff) -> None:
        """Stop what is left of it (its session, or its cgroup), and forget it."""
        process = one_off.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGHUP)
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_GRACE)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.returncode is None:
                await process.wait()
        code = process.returncode if process is not None else None
        if one_off.group is not None:
            for pid in one_off.group.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
            one_off.group.remove()
        if one_off.terminal is not None:
            with contextlib.suppress(OSError):
                os.close(one_off.terminal)
            one_off.terminal = None
        if one_off.staged is not None:
            shutil.rmtree(one_off.staged, ignore_errors=True)
        outcome = "ended" if code is None else f"exited with status {exit_code(code)}"
        self.runner.logs.event(
            one_off.app_uid, f"{one_off.name} {outcome}", one_off.name, one_off.version
        )
        self._forget(one_off)

    def _record(self, one_off: OneOff) -> None:
        """For `ps` (through the API), and for `up` to stop it with the platform."""
        assert one_off.process is not None
        pid = one_off.process.pid
        with contextlib.suppress(psutil.Error):
            created = psutil.Process(pid).create_time()
            record = {"pid": pid, "started_at": created}
            path = self.pids_dir / f"{one_off.app_uid}-{one_off.index}.json"
            path.write_text(json.dumps(record))
        self._report(one_off, gone=False)

    def _forget(self, one_off: OneOff) -> None:
        self.live.pop(f"{one_off.app_uid}/{one_off.name}", None)
        self.runner.release_port(one_off.port)
        with contextlib.suppress(OSError):
            (self.pids_dir / f"{one_off.app_uid}-{one_off.index}.json").unlink()
        self._report(one_off, gone=True)

    def _report(self, one_off: OneOff, gone: bool) -> None:
        state = processes.ProcessState(
            name=one_off.name,
            kind="run",
            index=one_off.index,
            state="up",
            release=one_off.version,
            host=self.settings.runner_name,
            pid=one_off.process.pid if one_off.process else None,
            port=one_off.port,
            since=one_off.started_at,
            restarts=0,
        )
        try:
            if gone:
                processes.gone(self.runner.redis, one_off.app_uid, state)
            else:
                processes.report(self.runner.redis, one_off.app_uid, state)
        except redis.RedisError as error:
            log.warning("cannot report %s: %s", one_off.name, error)


def exit_code(returncode: int) -> int:
    """A shell's convention: 128 + N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def stop_left_over(data_dir: Path) -> int:
    """One-offs a runner left running (`up` stops them with the platform)."""
    count = 0
    for path in (data_dir / "runner" / PIDS).glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            record = json.loads(path.read_text())
            process = still_running(int(record["pid"]), float(record["started_at"]))
            if process is not None:
                os.killpg(process.pid, signal.SIGKILL)
                count += 1
        path.unlink(missing_ok=True)
    return count


def _set_size(terminal: int, cols: Any, rows: Any) -> None:
    with contextlib.suppress(OSError, TypeError, ValueError, struct.error):
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))


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
