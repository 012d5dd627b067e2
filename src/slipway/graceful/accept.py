"""An accept loop that can stop at any moment without dropping a connection.

asyncio's own ways drop one now and then when a server stops, which an upgrade makes a
daily event: ``start_server`` sets a connection up in a task that ``Server.close()`` can
leave unfinished, and a cancelled ``sock_accept`` may accept a connection nobody receives
(CPython 3.11). Here one callback accepts and hands over; stopping removes the callback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("slipway.graceful")

BATCH = 64  # accepts per wake-up: the rest of the loop gets its turn
OUT_OF_FILES_PAUSE = 1.0  # seconds; as asyncio does, rather than spin on EMFILE
OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


async def accept_connections(
    listener: socket.socket, on_connection: Callable[[socket.socket, Any], None]
) -> None:
    """Call ``on_connection(sock, peer)`` for each new connection, until cancelled.

    ``on_connection`` runs in the event loop and must not block: start a task there. Stop
    it with :func:`stop_accepting`, which closes the listener only once it is unwatched.
    """
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    fd = listener.fileno()
    resume: list[asyncio.TimerHandle] = []

    def accept_ready() -> None:
        for _ in range(BATCH):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:
                if error.errno not in OUT_OF_FILES:
                    raise
                log.error("cannot accept connections for now: %s", error)
                loop.remove_reader(fd)
                resume[:] = [loop.call_later(OUT_OF_FILES_PAUSE, loop.add_reader, fd, accept_ready)]
                return
            sock.setblocking(False)
            on_connection(sock, peer)

    loop.add_reader(fd, accept_ready)
    try:
        await asyncio.Event().wait()
    finally:
        for handle in resume:
            handle.cancel()
        loop.remove_reader(fd)


async def stop_accepting(
    accepting: Iterable[asyncio.Task[Any]], listeners: Iterable[socket.socket | None]
) -> None:
    """Stop accept loops, then close their listening sockets: in that order.

    A socket closed while the event loop still watches its descriptor stays in the kernel's
    epoll set whenever another process holds the same socket (the successor, during an
    upgrade). Its number is soon reused, for a git process's pipe say, and the listener's
    readiness is then reported under that number: asyncio took it for the far end of git's
    stdin closing, and closed it in the middle of a session.
    """
    tasks = list(accepting)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)  # each removes its reader
    for listener in listeners:
        if listener is not None:
            listener.close()
