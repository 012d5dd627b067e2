"""A small server run by slipway.graceful.prefork, for its tests.

PREFORK_APP_WORKERS workers share one socket; each connection gets a line ``PID`` (the
worker's) and then has its lines echoed back. What a worker does when it starts is read from
the file in PREFORK_APP_BEHAVIOUR: ``serve``, ``crash`` (exit before ready), ``hang`` (never
ready) or ``stuck`` (never ready, and deaf to TERM).

    python tests/prefork_app.py PID_FILE
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from slipway.daemon.serverlog import setup_logging
from slipway.graceful import listen
from slipway.graceful.lifecycle import Lifecycle
from slipway.graceful.prefork import Prefork
from tests.graceful_app import serve_echo


async def serve(listener: socket.socket, ready: Callable[[], None], behaviour: str) -> None:
    if behaviour == "crash":
        raise SystemExit(3)
    if behaviour == "stuck":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if behaviour in ("hang", "stuck"):
        await asyncio.Event().wait()
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    ready()
    await serve_echo(listener, stopping)


def main() -> int:
    setup_logging()
    lifecycle = Lifecycle(
        "prefork-app",
        pid_file=Path(sys.argv[1]),
        ready_timeout=float(os.environ.get("PREFORK_APP_READY_TIMEOUT", "10")),
    )
    listener = lifecycle.listener(
        "app", lambda: listen("127.0.0.1", int(os.environ["PREFORK_APP_PORT"]))
    )
    workers = int(os.environ.get("PREFORK_APP_WORKERS", "2"))

    def worker(ready: Callable[[], None]) -> None:
        behaviour = Path(os.environ["PREFORK_APP_BEHAVIOUR"]).read_text().strip()
        asyncio.run(serve(listener, ready, behaviour))

    return Prefork(lifecycle, workers, worker).serve()


if __name__ == "__main__":
    raise SystemExit(main())
