"""slipway.graceful with a real fork+exec: upgrades hand the socket over without refusing a
single connection; failed upgrades leave the old version serving; drains never block."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psutil
import pytest

from slipway.graceful import (
    UpgradeFailed,
    accept_connections,
    listen,
    spawn_successor,
    stop_accepting,
)
from slipway.graceful.handoff import READY_BYTE, STOP_GRACE, _wait_ready
from slipway.host.ports import free_port
from tests.load import Load
from tests.services import exited, wait_until

APP = Path(__file__).parents[2] / "graceful_app.py"


@dataclass
class App:
    process: subprocess.Popen[bytes]
    port: int
    pid_file: Path
    behaviour: Path

    @property
    def serving_pid(self) -> int:
        return int(self.pid_file.read_text())

    def upgrade(self) -> None:
        os.kill(self.serving_pid, signal.SIGHUP)

    def ask(self) -> int:
        """One connection: the PID that answered it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            return int(sock.makefile().readline())


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    behaviour = tmp_path / "behaviour"
    behaviour.write_text("serve")
    port = free_port()
    env = {
        **os.environ,
        "GRACEFUL_APP_BEHAVIOUR": str(behaviour),
        "GRACEFUL_APP_PORT": str(port),
        "GRACEFUL_APP_READY_TIMEOUT": "3",
        "PYTHONPATH": str(Path(__file__).parents[3]),
    }
    pid_file = tmp_path / "app.pid"
    process = subprocess.Popen([sys.executable, str(APP), str(pid_file)], env=env)
    wait_until(pid_file.exists, 20, "the app", process)
    running = App(process, port, pid_file, behaviour)
    try:
        yield running
    finally:
        for pid in {process.pid, running.serving_pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()


def wait_for_new_pid(app: App, old: int) -> int:
    wait_until(lambda: app.serving_pid != old, 20, "the new version")
    return app.serving_pid


def test_upgrades_under_load_refuse_nothing(app: App) -> None:
    pids = [app.serving_pid]
    with Load(app.ask) as load:
        for _ in range(5):
            time.sleep(0.3)
            app.upgrade()
            pids.append(wait_for_new_pid(app, pids[-1]))
        time.sleep(0.3)
    assert load.failures == []
    assert len(load.results) > 100
    assert set(load.results) <= set(pids) and len(set(pids)) == 6
    assert load.results[-1] == pids[-1]
    for old in pids[:-1]:  # every old generation has exited (nothing to drain)
        wait_until(partial(exited, old), 10, f"pid {old} exits")


@pytest.mark.parametrize("behaviour", ["crash", "hang"])
def test_a_new_version_that_fails_leaves_the_old_one_serving(app: App, behaviour: str) -> None:
    old = app.serving_pid
    app.behaviour.write_text(behaviour)
    app.upgrade()
    time.sleep(4 if behaviour == "hang" else 1.5)  # past the 3 s ready timeout
    assert app.serving_pid == old
    assert app.ask() == old

    def failed_one_gone() -> bool:
        children = psutil.Process(old).children()
        return not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

    # A hung one is told to stop (TERM), then killed when it does not.
    wait_until(failed_one_gone, STOP_GRACE + 5, "the failed version gone")
    app.behaviour.write_text("serve")
    app.upgrade()  # and a later upgrade still works
    new = wait_for_new_pid(app, old)
    wait_until(lambda: app.ask() == new, 10, "the new version answers")


def test_an_upgrade_can_start_while_an_older_generation_drains(app: App) -> None:
    first = app.serving_pid
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as held:
        stream = held.makefile("rw")
        assert int(stream.readline()) == first
        app.upgrade()
        second = wait_for_new_pid(app, first)
        app.upgrade()  # the first one still drains: this must not wait for it
        third = wait_for_new_pid(app, second)
        wait_until(lambda: app.ask() == third, 10, "the third generation answers")
        assert not exited(first)
        stream.write("still here\n")
        stream.flush()
        assert stream.readline() == "still here\n"  # the held session still works
        stream.close()  # the socket closes only when its file object does too
    wait_until(partial(exited, first), 10, "the first exits")


def test_systemd_socket_activation_and_notify(tmp_path: Path) -> None:
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = tmp_path / "notify.sock"
    notify.bind(str(notify_path))
    notify.settimeout(20)
    behaviour = tmp_path / "behaviour"
    behaviour.write_text("serve")
    # What systemd does: the socket as fd 3, LISTEN_PID set to the process it starts.
    code = (
        f"import os, sys; os.dup2({listener.fileno()}, 3); "
        "os.environ['LISTEN_PID'] = str(os.getpid()); "
        f"os.execv(sys.executable, [sys.executable, {str(APP)!r}, {str(tmp_path / 'p')!r}])"
    )
    env = {
        **os.environ,
        "LISTEN_FDS": "1",
        "LISTEN_FDNAMES": "app",
        "NOTIFY_SOCKET": str(notify_path),
        "GRACEFUL_APP_BEHAVIOUR": str(behaviour),
        "GRACEFUL_APP_PORT": "1",  # not used: the socket comes from "systemd"
        "PYTHONPATH": str(Path(__file__).parents[3]),
    }
    process = subprocess.Popen([sys.executable, "-c", code], env=env, pass_fds=(listener.fileno(),))
    try:
        message = notify.recv(1024).decode()
        assert "READY=1" in message and f"MAINPID={process.pid}" in message
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert int(sock.makefile().readline()) == process.pid
    finally:
        process.kill()
        process.wait()
        listener.close()
        notify.close()


def test_a_ready_byte_that_arrives_at_the_deadline_counts() -> None:
    """Under a starved CPU the byte can land just as the wait runs out: the new version
    serves already, and taking it for a failure would kill what it accepted."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        os.write(write_end, READY_BYTE)
        _wait_ready(process, read_end, timeout=0)  # the deadline has passed already
    finally:
        process.kill()
        process.wait()
        os.close(read_end)
        os.close(write_end)


def test_a_new_version_that_fails_to_start_is_stopped_gently(tmp_path: Path) -> None:
    """TERM first, so that what it took in before giving up is finished, not cut."""
    told = tmp_path / "told"
    script = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(told)!r}, 'w').write('TERM'),"
        " sys.exit(0)))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(UpgradeFailed, match="not ready after"):
        spawn_successor([sys.executable, "-c", script], {}, timeout=1.0)
    assert told.read_text() == "TERM"


def test_a_listener_is_closed_only_once_unwatched() -> None:
    """The gateway cut git sessions during upgrades: it closed its listener while the event
    loop still watched it; the kernel kept watching the socket (the successor holds it)
    under a number a git pipe reused, and asyncio closed that pipe when a client connected.
    stop_accepting closes in the right order: a pipe taking the number stays open."""

    async def scenario() -> bool:
        listener = listen("127.0.0.1", 0)
        successors_copy = listener.dup()
        port = listener.getsockname()[1]
        accepting = asyncio.create_task(accept_connections(listener, lambda s, _: s.close()))
        await asyncio.sleep(0.05)
        number = listener.fileno()
        await stop_accepting([accepting], [listener])
        read_end, write_end = os.pipe()  # git's stdin, on the listener's old number
        if write_end != number:
            if read_end == number:
                read_end = os.dup(read_end)
            os.dup2(write_end, number)
            os.close(write_end)
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(number, "wb", buffering=0)
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, pipe)
        with socket.create_connection(("127.0.0.1", port)):  # the successor's client
            await asyncio.sleep(0.2)
        still_open = not transport.is_closing()
        transport.close()
        os.close(read_end)
        successors_copy.close()
        return still_open

    assert asyncio.run(scenario())


async def test_what_a_new_listener_accepts_is_sent_without_delay() -> None:
    """asyncio turns Nagle's algorithm off only on sockets it knows are TCP: a listener made
    without saying so had the API's answers wait for the client's delayed ACK (40 ms)."""
    listener = listen("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        nodelay.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connection, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        assert await asyncio.wait_for(nodelay, 5) == 1
        writer.close()
