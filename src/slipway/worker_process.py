"""`slipwayd worker` as a process: slipway.jobs under graceful signals.

TERM/INT drain with the jobs shutdown timeout; TSTP quiets; TTIN dumps; HUP starts the new
version and, once its heartbeat is in Redis, drains this one. (slipway.jobs itself stays free
of the rest of Slipway, so this wiring lives here.)
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from slipway.graceful.lifecycle import Lifecycle
from slipway.jobs.launcher import Launcher, WorkerConfig


async def serve_worker(config: WorkerConfig, pid_file: Path | None) -> None:
    launcher = Launcher(config)
    lifecycle = Lifecycle("worker", pid_file=pid_file, ready_timeout=config.timeout + 30)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, launcher.request_stop)
    loop.add_signal_handler(signal.SIGINT, launcher.request_stop)
    loop.add_signal_handler(signal.SIGTSTP, launcher.quiet)
    loop.add_signal_handler(signal.SIGTTIN, launcher.dump)
    loop.add_signal_handler(signal.SIGHUP, lifecycle.upgrade)
    running = asyncio.create_task(launcher.run())
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
