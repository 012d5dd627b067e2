"""Several processes serving one listening socket, started, stopped and upgraded as one.

A Python server uses one core. Like gunicorn's arbiter, a small manager forks its workers
once the code is imported (each starts in milliseconds and shares that memory), says it is
ready once all of them serve, starts a new one when one dies, and stops or hands over all of
them together. The kernel queues connections on the shared socket and an idle worker takes
them, so an upgrade or a dying worker never refuses one.

The manager is not asyncio: forking a process with a running event loop hands the child
the loop's epoll and its state. It waits on one ``select`` for signals (their wakeup pipe)
and for workers saying they are ready (a pipe of PIDs).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable

from slipway.graceful.handoff import STOP_GRACE
from slipway.graceful.lifecycle import Lifecycle

log = logging.getLogger("slipway.graceful")

RESTART_PAUSE = 1.0  # seconds before a worker that died is replaced: no busy loop of crashes
_PR_SET_PDEATHSIG = 1
_PID = struct.Struct("=i")  # a worker's "ready": its PID, one atomic write to the pipe
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)

#: What a worker runs: serve until told to stop (TERM), calling ``ready()`` once it accepts.
WorkerMain = Callable[[Callable[[], None]], None]


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process when its parent exits (a SIGKILLed
    manager or supervisor leaves nothing behind)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)


class Prefork:
    """``count`` workers running ``main``, managed by this process (see the module doc)."""

    def __init__(self, lifecycle: Lifecycle, count: int, main: WorkerMain) -> None:
        self.lifecycle = lifecycle
        self.count = count
        self.main = main
        self.workers: set[int] = set()
        self.ready_workers: set[int] = set()
        self.stopping = False
        self.serving = False  # all the first workers said they were ready
        self.start_failed = False
        self._restart_at: list[float] = []  # when to fork replacements for workers that died

    def serve(self) -> int:
        """Run until stopped (or handed over); the exit status: 0, or 1 if the workers could
        not start."""
        name = self.lifecycle.name
        wakeup_read, wakeup_write = os.pipe()
        self._ready_read, self._ready_write = os.pipe()
        for fd in (wakeup_read, wakeup_write):
            os.set_blocking(fd, False)
        self._own_fds = (wakeup_read, wakeup_write, self._ready_read)
        previous = {signum: signal.signal(signum, _noted) for signum in _SIGNALS}
        signal.set_wakeup_fd(wakeup_write)
        try:
            for _ in range(self.count):
                self._fork()
            deadline = time.monotonic() + self.lifecycle.ready_timeout
            while self.workers or not self.stopping:
                timeout = self._next_timeout(None if self.serving else deadline)
                readable, _, _ = select.select([wakeup_read, self._ready_read], [], [], timeout)
                if self._ready_read in readable:
                    self._note_ready()
                if wakeup_read in readable:
                    for signum in os.read(wakeup_read, 64):
                        self._on_signal(signum)
                self._reap()
                if not self.serving:
                    if self.start_failed or self.stopping or time.monotonic() > deadline:
                        log.error("%s: the workers did not all start; stopping", name)
                        self._stop_workers()
                        self._wait_all()
                        return 1
                    if self.ready_workers >= self.workers:
                        self.serving = True
                        self.lifecycle.ready()
                        log.info("%s: %d workers serve", name, len(self.workers))
                self._restart_due()
            return 0
        finally:
            signal.set_wakeup_fd(-1)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in (*self._own_fds, self._ready_write):
                os.close(fd)
            self.lifecycle.exited()

    def _next_timeout(self, deadline: float | None) -> float | None:
        """Seconds until the next thing to do without being woken: a replacement, or the
        end of the start."""
        moments = [*self._restart_at, *([deadline] if deadline is not None else [])]
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:
            self._run_worker()  # never returns
        self.workers.add(pid)

    def _run_worker(self) -> None:
        """In the new worker: drop the manager's signal plumbing, then serve."""
        status = 1
        try:
            parent = os.getppid()
            signal.set_wakeup_fd(-1)
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # upgrades are the manager's
            for fd in self._own_fds:
                os.close(fd)
            die_with_parent()
            if os.getppid() != parent:  # the manager died before prctl took effect
                os._exit(1)
            ready_write = self._ready_write

            def ready() -> None:
                os.write(ready_write, _PID.pack(os.getpid()))

            self.main(ready)
            status = 0
        except BaseException:  # whatever it is, this process must end here
            traceback.print_exc()
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)  # not the manager's atexit handlers, nor its finally blocks

    def _note_ready(self) -> None:
        data = os.read(self._ready_read, _PID.size * 64)
        for (pid,) in _PID.iter_unpack(data[: len(data) - len(data) % _PID.size]):
            if pid in self.workers:
                self.ready_workers.add(pid)

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop_workers()
        elif signum == signal.SIGHUP:
            self._upgrade()

    def _stop_workers(self) -> None:
        """Each worker finishes what it serves and exits; none is started again."""
        self.stopping = True
        self._restart_at.clear()
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _upgrade(self) -> None:
        """Blocks until the new version is ready (or failed): signals wait in the pipe."""
        if self.lifecycle.refuses_upgrade():
            return
        if self.stopping:
            log.warning("%s: stopping already; no upgrade", self.lifecycle.name)
            return
        if self.lifecycle.start_successor():
            self._stop_workers()

    def _reap(self) -> None:
        """Collect workers that exited; plan a replacement for those that died while serving.
        (Only our workers: the successor of an upgrade is its own Popen's to wait for.)"""
        for pid in list(self.workers):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            self.workers.discard(pid)
            self.ready_workers.discard(pid)
            if not self.serving:
                self.start_failed = True
            elif not self.stopping:
                log.error(
                    "%s: worker %d died (%s); starting another",
                    self.lifecycle.name,
                    pid,
                    _describe(status),
                )
                self._restart_at.append(time.monotonic() + RESTART_PAUSE)

    def _restart_due(self) -> None:
        now = time.monotonic()
        due = [moment for moment in self._restart_at if moment <= now]
        for moment in due:
            self._restart_at.remove(moment)
            self._fork()

    def _wait_all(self) -> None:
        """Wait for the workers told to stop; kill those that do not within STOP_GRACE (a
        worker stuck in its start may not have its TERM handler yet)."""
        deadline = time.monotonic() + STOP_GRACE
        while self.workers:
            for pid in list(self.workers):
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        if time.monotonic() < deadline:
                            continue
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                self.workers.discard(pid)
            time.sleep(0.05)


def _noted(_signum: int, _frame: object) -> None:
    """A Python handler, so that the signal is written to the wakeup pipe and not acted on
    by the default action; the select loop handles it."""


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
