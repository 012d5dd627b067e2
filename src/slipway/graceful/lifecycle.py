"""The signals of a long-lived server process, for asyncio servers.

TERM or INT: stop (accept no more, drain, exit). HUP: start the new version with the same
listening sockets; once it is ready, stop like TERM. One upgrade at a time, but an old
generation that is still draining never blocks the next one: it is a separate process.

Under a supervisor that holds the sockets itself (``slipwayd up``), upgrades are the
supervisor's job and HUP is ignored here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from slipway.graceful.handoff import UpgradeFailed, inherited_sockets, ready, spawn_successor

log = logging.getLogger("slipway.graceful")

SUPERVISED_VARIABLE = "SLIPWAY_SUPERVISED"
READY_TIMEOUT = 30.0


class Lifecycle:
    def __init__(
        self, name: str, pid_file: Path | None = None, ready_timeout: float = READY_TIMEOUT
    ) -> None:
        self.name = name
        self.pid_file = pid_file
        self.ready_timeout = ready_timeout
        self.sockets = inherited_sockets()
        self.supervised = os.environ.get(SUPERVISED_VARIABLE) == "1"
        self.stopping = asyncio.Event()
        self.handed_over = False  # a successor serves now; we only drain
        self._upgrading = False

    def listener(self, name: str, create: Callable[[], socket.socket]) -> socket.socket:
        """The inherited socket called ``name``, or a new one (then passed on at upgrades)."""
        if name not in self.sockets:
            self.sockets[name] = create()
        return self.sockets[name]

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.upgrade)

    def ready(self) -> None:
        """We serve: tell our parent, systemd, and the PID file."""
        ready(self.pid_file)
        log.info("%s ready (pid %d)", self.name, os.getpid())

    def stop(self) -> None:
        self.stopping.set()

    def exited(self) -> None:
        """We are done: remove the PID file, unless a successor has written its own."""
        if self.pid_file is None:
            return
        try:
            if int(self.pid_file.read_text().strip()) == os.getpid():
                self.pid_file.unlink()
        except (OSError, ValueError):
            pass

    def upgrade(self) -> None:
        if self.refuses_upgrade():
            return
        if self._upgrading or self.handed_over:
            log.warning("%s: an upgrade is already in progress", self.name)
            return
        self._upgrading = True
        asyncio.get_running_loop().create_task(self._upgrade())

    def refuses_upgrade(self) -> bool:
        """Under a supervisor, upgrades are its job: say so, and do nothing."""
        if self.supervised:
            log.warning("%s: upgrades come from the supervisor; send slipwayd up a HUP", self.name)
        return self.supervised

    async def _upgrade(self) -> None:
        try:
            if await asyncio.to_thread(self.start_successor):
                self.stopping.set()
        finally:
            self._upgrading = False

    def start_successor(self) -> bool:
        """Start the new version on our sockets and wait until it is ready (blocking); True
        if it serves now, and we only drain."""
        argv = [sys.executable, *sys.orig_argv[1:]]
        log.info("%s: starting the new version: %s", self.name, " ".join(argv))
        try:
            successor = spawn_successor(argv, self.sockets, self.ready_timeout)
        except UpgradeFailed as failure:
            log.error("%s: upgrade failed, still serving: %s", self.name, failure)
            return False
        log.info("%s: pid %d serves now; draining", self.name, successor.pid)
        self.handed_over = True
        return True
