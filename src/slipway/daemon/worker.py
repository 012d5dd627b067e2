"""`slipwayd worker` as a process: slipway.jobs under graceful signals.

TERM/INT drain with the jobs shutdown timeout; TSTP quiets; TTIN dumps; HUP starts the new
version and, once its heartbeat is in Redis, drains this one. (slipway.jobs itself stays free
of the rest of Slipway, so this wiring lives here.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

from slipway.graceful.lifecycle import Lifecycle
from slipway.jobs.launcher import CLOSE_TIMEOUT, SHUTDOWN_GRACE, Launcher, WorkerConfig

log = logging.getLogger("slipway.jobs")

# The launcher stops within timeout + SHUTDOWN_GRACE + CLOSE_TIMEOUT; past this much more,
# something it cannot interrupt holds the process (a job that swallows its cancellation, a
# thread of the event loop's executor), and the process exits anyway.
EXIT_MARGIN = 0.5


class _Watchdog:
    """Ends the process if a requested stop takes longer than promised: a worker that only
    SIGKILL stops would be killed mid-cleanup by every orchestrator instead."""

    def __init__(self, timeout: float) -> None:
        self.limit = timeout + SHUTDOWN_GRACE + CLOSE_TIMEOUT + EXIT_MARGIN
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.limit, self._exit)
            self._timer.daemon = True
            self._timer.start()

    def _exit(self) -> None:
        log.error("worker did not stop within %.1f s; exiting now", self.limit)
        os._exit(1)


async def serve_worker(config: WorkerConfig, pid_file: Path | None) -> None:
    launcher = Launcher(config)
    lifecycle = Lifecycle("worker", pid_file=pid_file, ready_timeout=config.timeout + 30)
    watchdog = _Watchdog(config.timeout)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, launcher.request_stop)
    loop.add_signal_handler(signal.SIGINT, launcher.request_stop)
    loop.add_signal_handler(signal.SIGTSTP, launcher.quiet)
    loop.add_signal_handler(signal.SIGTTIN, launcher.dump)
    loop.add_signal_handler(signal.SIGHUP, lifecycle.upgrade)
    running = asyncio.create_task(launcher.run())
    # However the stop is asked for: a signal, Sidekiq's Web UI, a successor.
    stopping = asyncio.create_task(launcher.stopping.wait())
    stopping.add_done_callback(lambda _: watchdog.arm())
    ready = asyncio.create_task(launcher.ready.wait())
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        lifecycle.ready()
    handed_over = asyncio.create_task(lifecycle.stopping.wait())
    await asyncio.wait([running, handed_over], return_when=asyncio.FIRST_COMPLETED)
    if handed_over.done():
        launcher.request_stop()  # the successor takes the jobs from here
    handed_over.cancel()
    await running
    lifecycle.exited()
