"""A small server run under slipway.graceful, for the upgrade tests.

Each connection gets a line ``PID`` and then has its lines echoed back. What the *next*
version does is read from the file in GRACEFUL_APP_BEHAVIOUR when it starts: ``serve``,
``crash`` (exit before ready) or ``hang`` (never ready).

    python tests/graceful_app.py PID_FILE
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from slipway.graceful import accept_connections, listen, stop_accepting
from slipway.graceful.lifecycle import Lifecycle


async def echo(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(f"{os.getpid()}\n".encode())
        await writer.drain()
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main(behaviour: str) -> None:
    if behaviour == "crash":
        raise SystemExit(3)
    lifecycle = Lifecycle(
        "graceful-app",
        pid_file=Path(sys.argv[1]),
        ready_timeout=float(os.environ.get("GRACEFUL_APP_READY_TIMEOUT", "10")),
    )
    lifecycle.install_signal_handlers()
    listener = lifecycle.listener(
        "app", lambda: listen("127.0.0.1", int(os.environ["GRACEFUL_APP_PORT"]))
    )
    if behaviour == "hang":
        await asyncio.Event().wait()
    lifecycle.ready()
    await serve_echo(listener, lifecycle.stopping)


async def serve_echo(listener: socket.socket, stopping: asyncio.Event) -> None:
    """Echo on every connection until ``stopping``; then accept no more (a successor, or
    another worker, has the socket) and let the open connections finish."""
    connections: set[asyncio.Task[None]] = set()

    def start(sock: socket.socket, peer: object) -> None:
        connection = asyncio.create_task(echo(sock))
        connections.add(connection)
        connection.add_done_callback(connections.discard)

    accepting = asyncio.create_task(accept_connections(listener, start))
    await stopping.wait()
    await stop_accepting([accepting], [listener])  # this process's copy only
    if connections:
        await asyncio.wait(connections)


if __name__ == "__main__":
    asyncio.run(main(Path(os.environ["GRACEFUL_APP_BEHAVIOUR"]).read_text().strip()))
