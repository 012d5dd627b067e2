"""Run a tree of child processes in the foreground, upgrade them in place, stop them together.

`slipwayd up` is the embedded platform: each part is a child process. Children run in their
own session so that a Ctrl-C reaches only the supervisor, which then stops them in reverse
order; each child is also told by the kernel to exit if the supervisor dies, so nothing is
left behind even after a SIGKILL.

Our own servers are started the graceful way (slipway.graceful): the supervisor holds their
listening sockets and hands them over, and learns they are ready through a pipe. On SIGHUP it
starts the new version of each, and only once one is ready tells the old one to drain: the
ports never close.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from slipway.graceful import UpgradeFailed, spawn_successor
from slipway.graceful.lifecycle import SUPERVISED_VARIABLE
from slipway.graceful.prefork import die_with_parent

log = logging.getLogger("slipway.embedded.supervisor")

READY_TIMEOUT = 30.0


class ServiceError(RuntimeError):
    """A child process failed to start or become ready."""


@dataclass
class Service:
    """One child process: how to start it, how to know it is ready, where it listens.

    A service with ``sockets`` is one of our servers: it gets them handed over, tells us it is
    ready through a pipe, and can be upgraded. Others (redis-server) are checked with
    ``ready`` and only started and stopped.
    """

    name: str
    argv: Sequence[str]
    listens: str
    ready: Callable[[], bool] | None = None
    sockets: dict[str, socket.socket] | None = None
    env: dict[str, str] | None = None
    log_path: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    draining: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        """None while running (or before start)."""
        return self.process.poll() if self.process else None

    @property
    def upgradable(self) -> bool:
        return self.sockets is not None

    def _spawn(self, timeout: float) -> subprocess.Popen[bytes]:
        env = {**(self.env or os.environ), SUPERVISED_VARIABLE: "1"}
        with open(self.log_path or os.devnull, "ab") as log_file:
            try:
                return spawn_successor(
                    self.argv,
                    self.sockets or {},
                    timeout,
                    env=env,
                    output=log_file,
                    preexec_fn=die_with_parent,
                    new_session=True,  # a Ctrl-C reaches the supervisor, which stops in order
                ).process
            except UpgradeFailed as failure:
                hint = f"; see {self.log_path}" if self.log_path else ""
                raise ServiceError(f"{self.name}: {failure}{hint}") from failure

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        if self.upgradable:
            self.process = self._spawn(timeout)
            return
        with open(self.log_path or os.devnull, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )  # no threads run yet when services start
        deadline = time.monotonic() + timeout
        while self.ready is not None and not self.ready():
            if self.process.poll() is not None:
                hint = f"; see {self.log_path}" if self.log_path else ""
                raise ServiceError(
                    f"{self.name} exited with status {self.process.returncode}" + hint
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} was not ready after {timeout:.0f} s")
            time.sleep(0.05)

    def upgrade(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the new version; once it is ready, the old one drains and exits."""
        if not self.upgradable or self.process is None:
            return
        successor = self._spawn(timeout)
        previous, self.process = self.process, successor
        previous.terminate()
        self.draining.append(previous)

    def reap(self) -> None:
        """Forget the old generations that have finished draining."""
        self.draining = [process for process in self.draining if process.poll() is None]

    def stop(self, timeout: float = 10.0) -> None:
        running = [p for p in [self.process, *self.draining] if p and p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.draining = []


class Supervisor:
    """Starts services in order, watches them, upgrades them on HUP, stops them in reverse."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self._stopping = False
        self._upgrade_requested = False

    def start(self) -> None:
        started: list[Service] = []
        try:
            for service in self.services:
                service.start()
                started.append(service)
        except BaseException:
            for service in reversed(started):
                service.stop()
            raise

    def upgrade(self) -> None:
        """Upgrade every service that can be, one after the other."""
        for service in self.services:
            if not service.upgradable:
                continue
            try:
                service.upgrade()
                log.info("%s upgraded: pid %s serves now", service.name, service.pid)
                print(f"  {service.name:<8} upgraded: pid {service.pid}", flush=True)
            except ServiceError as error:
                log.error(
                    "upgrade of %s failed, the old version keeps serving: %s", service.name, error
                )
                print(f"  {service.name:<8} upgrade failed, still serving: {error}", flush=True)

    def wait(
        self,
        announce: Callable[[], None] | None = None,
        every: tuple[float, Callable[[], None]] | None = None,
    ) -> Service | None:
        """Block until SIGINT/SIGTERM (returns None) or a child exits (returns it); SIGHUP
        upgrades in between. ``announce`` runs once the signals are ours: whoever it tells
        that we run may stop us at once. ``every`` is (seconds, a check to run that often)."""

        def request_stop(signum: int, frame: object) -> None:
            self._stopping = True

        def request_upgrade(signum: int, frame: object) -> None:
            self._upgrade_requested = True

        handlers = {
            signal.SIGINT: request_stop,
            signal.SIGTERM: request_stop,
            signal.SIGHUP: request_upgrade,
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            if announce is not None:
                announce()
            next_check = time.monotonic()
            while not self._stopping:
                if self._upgrade_requested:
                    self._upgrade_requested = False
                    self.upgrade()
                if every is not None and time.monotonic() >= next_check:
                    every[1]()
                    next_check = time.monotonic() + every[0]
                for service in self.services:
                    service.reap()
                    if service.returncode is not None:
                        return service
                time.sleep(0.2)
            return None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
