"""One-off processes (`slipway run`): the runner takes them from the API over a WebSocket
(slipway.runtime.oneoff_server, frames in slipway.wire.oneoff_frames) on a port of its own,
published with its heartbeat; the API authenticates the user and relays. A one-off runs the
app's current release as the app's user, in a cgroup of its own, with a pseudo-terminal or
with three pipes.

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
import json
import logging
import os
import pty
import shutil
import signal
import struct
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from slipway.builder.platform import PlatformApi
from slipway.fleet import processes
from slipway.host.appuser import AppUser, ensure_app_user
from slipway.runtime import releases
from slipway.runtime.cgroups import SIZES, Group
from slipway.runtime.instances import Instance, launcher
from slipway.runtime.resources import RunnerResources
from slipway.runtime.state import still_running
from slipway.wire import oneoff_frames as frames

log = logging.getLogger("slipway.runtime")

STOP_GRACE = 5.0  # seconds from SIGHUP/SIGTERM to SIGKILL
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


class OneOffs:
    """The one-offs running on this host: each started, reported to `ps`, recorded for `up`,
    and stopped, whoever asked (its session, its silence, its own exit)."""

    def __init__(self, resources: RunnerResources) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.live: dict[str, OneOff] = {}  # by app_uid/name
        self.pids_dir = self.settings.data_dir / "runner" / PIDS
        self.pids_dir.mkdir(mode=0o700, exist_ok=True)

    def versions_in_use(self, app_uid: str) -> set[int]:
        return {o.version for o in list(self.live.values()) if o.app_uid == app_uid}

    def wait_until_none(self) -> None:
        while self.live:
            time.sleep(0.2)

    def event(self, one_off: OneOff, message: str) -> None:
        """A line of the app's log about this one-off."""
        self.resources.logs.event(one_off.app_uid, message, one_off.name, one_off.version)

    def prepare(self, request: dict[str, Any]) -> OneOff:
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
        directory = releases.unpack(self.resources.releases_dir, app_uid, version, slug, user)
        index = int(self.resources.redis.incr(f"slipway:run:{app_uid}"))
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
        if self.resources.cgroups is not None:
            one_off.group = self.resources.cgroups.create(f"{app_uid}-run-{index}", SIZES[size])
        one_off.port = self.resources.ports.take()
        self.live[f"{app_uid}/{one_off.name}"] = one_off
        return one_off

    async def start(self, one_off: OneOff, request: dict[str, Any], staged: Path | None) -> None:
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
            set_terminal_size(secondary, request.get("cols"), request.get("rows"))
            argv = ["setsid", "--ctty", *argv]  # the terminal is its controlling one
            stdio = (secondary, secondary, secondary)
        elif one_off.detached:
            base = self.resources.logs_dir / one_off.app_uid / f"run-{one_off.index}-{one_off.port}"
            self.resources.logs.watch(base, one_off.app_uid, one_off.name, one_off.version)
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
        self.resources.logs.event(
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

    # -- the end -----------------------------------------------------------------------------

    async def wait_detached(self, one_off: OneOff) -> None:
        """A detached one ends with its process."""
        assert one_off.process is not None
        await one_off.process.wait()
        if one_off.log_base is not None:
            self.resources.logs.close(one_off.log_base)
        await self.end(one_off)

    async def end(self, one_off: OneOff) -> None:
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
        self.resources.logs.event(
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
        self.resources.ports.release(one_off.port)
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
                processes.gone(self.resources.redis, one_off.app_uid, state)
            else:
                processes.report(self.resources.redis, one_off.app_uid, state)
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


def set_terminal_size(terminal: int, cols: Any, rows: Any) -> None:
    with contextlib.suppress(OSError, TypeError, ValueError, struct.error):
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))
