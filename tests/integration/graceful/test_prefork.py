"""Several workers on one socket (slipway.graceful.prefork), run as a real process tree:
they all serve, one that dies is replaced, a start that fails fails as a whole, TERM drains
them, HUP upgrades them together, and none outlives a killed manager."""

from __future__ import annotations

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

from slipway.graceful.prefork import RESTART_PAUSE
from slipway.host.ports import free_port
from tests.load import Load
from tests.services import exited, wait_until

APP = Path(__file__).parents[2] / "prefork_app.py"
WORKERS = 3


@dataclass
class App:
    process: subprocess.Popen[bytes]
    port: int
    pid_file: Path
    behaviour: Path
    output: Path

    @property
    def manager(self) -> int:
        return int(self.pid_file.read_text())

    def workers(self) -> set[int]:
        """The serving manager's live children."""
        children = psutil.Process(self.manager).children()
        return {c.pid for c in children if c.status() != psutil.STATUS_ZOMBIE}

    def connect(self) -> tuple[socket.socket, int]:
        """A connection held open, and the worker that answered it."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock, int(sock.makefile().readline())

    def ask(self) -> int:
        sock, pid = self.connect()
        sock.close()
        return pid


def start(tmp_path: Path, behaviour: str = "serve", ready_timeout: float = 10) -> App:
    (tmp_path / "behaviour").write_text(behaviour)
    port = free_port()
    env = {
        **os.environ,
        "PREFORK_APP_BEHAVIOUR": str(tmp_path / "behaviour"),
        "PREFORK_APP_PORT": str(port),
        "PREFORK_APP_WORKERS": str(WORKERS),
        "PREFORK_APP_READY_TIMEOUT": str(ready_timeout),
        "PYTHONPATH": str(Path(__file__).parents[3]),
    }
    output = tmp_path / "app.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(APP), str(tmp_path / "app.pid")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return App(process, port, tmp_path / "app.pid", tmp_path / "behaviour", output)


def kill_tree(app: App) -> None:
    pids = {app.process.pid}
    with contextlib.suppress(OSError, ValueError):
        pids.add(app.manager)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            for member in [*psutil.Process(pid).children(recursive=True), psutil.Process(pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
    app.process.wait()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    running = start(tmp_path)
    try:
        wait_until(running.pid_file.exists, 20, "the app", running.process)
        yield running
    finally:
        kill_tree(running)


def test_every_worker_serves_the_one_socket(app: App) -> None:
    workers = app.workers()
    assert len(workers) == WORKERS and app.process.pid not in workers
    for worker in workers:  # the others paused: only this one can take the connection
        others = workers - {worker}
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            assert app.ask() == worker
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)


def test_a_worker_that_dies_is_replaced(app: App) -> None:
    workers = app.workers()
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        workers = app.workers()
        return len(workers) == WORKERS and victim not in workers

    wait_until(replaced, 10, "a new worker")
    assert app.manager == app.process.pid  # the manager itself went on
    assert app.ask() in app.workers()
    assert f"worker {victim} died (signal SIGKILL); starting another" in app.output.read_text()


def test_a_worker_that_keeps_dying_is_retried_without_spinning(app: App) -> None:
    first = app.workers()
    app.behaviour.write_text("crash")  # what every new worker does from now on
    os.kill(min(first), signal.SIGKILL)
    time.sleep(3 * RESTART_PAUSE + 0.5)
    deaths = app.output.read_text().count("died")
    assert 2 <= deaths <= 5, deaths  # one replacement a second, not a busy loop
    assert app.workers() == first - {min(first)}  # the others serve on
    assert app.ask() in first
    app.behaviour.write_text("serve")
    wait_until(lambda: len(app.workers()) == WORKERS, 10, "the worker count back")


@pytest.mark.parametrize(("behaviour", "within"), [("crash", 5), ("hang", 10), ("stuck", 20)])
def test_workers_that_cannot_start_fail_the_start(
    tmp_path: Path, behaviour: str, within: float
) -> None:
    app = start(tmp_path, behaviour, ready_timeout=2)
    try:
        started = time.monotonic()
        assert app.process.wait(30) == 1
        assert time.monotonic() - started < within  # stuck: killed after STOP_GRACE
        assert not app.pid_file.exists()
        assert "the workers did not all start" in app.output.read_text()
        left = [p for p in psutil.Process().children(recursive=True) if str(APP) in p.cmdline()]
        assert left == []  # no worker left behind
    finally:
        kill_tree(app)


def test_term_lets_every_worker_finish_its_sessions(app: App) -> None:
    sock, worker = app.connect()
    stream = sock.makefile("rw")
    others = app.workers() - {worker}
    app.process.send_signal(signal.SIGTERM)
    for other in others:
        wait_until(partial(exited, other), 10, f"worker {other} exits")
    assert not exited(worker) and app.process.poll() is None  # the session holds them
    stream.write("still here\n")
    stream.flush()
    assert stream.readline() == "still here\n"
    stream.close()
    sock.close()
    assert app.process.wait(10) == 0
    assert exited(worker) and not app.pid_file.exists()


def test_hup_upgrades_every_worker_under_load(app: App) -> None:
    generations = [(app.manager, app.workers())]
    with Load(app.ask) as load:
        for _ in range(3):
            time.sleep(0.3)
            os.kill(app.manager, signal.SIGHUP)
            wait_until(lambda: app.manager != generations[-1][0], 20, "the new version")
            generations.append((app.manager, app.workers()))
        time.sleep(0.3)
    assert load.failures == []
    assert len(load.results) > 100
    every_worker = set().union(*(workers for _, workers in generations))
    assert set(load.results) <= every_worker
    assert load.results[-1] in generations[-1][1]
    for manager, workers in generations[:-1]:
        assert len(workers) == WORKERS
        for pid in {manager, *workers}:
            wait_until(partial(exited, pid), 10, f"pid {pid} of an old generation exits")


def test_a_killed_manager_takes_its_workers_along(app: App) -> None:
    workers = app.workers()
    os.kill(app.manager, signal.SIGKILL)
    for pid in workers:
        wait_until(partial(exited, pid), 10, f"worker {pid} exits")
    with pytest.raises(ConnectionRefusedError):
        app.ask()
