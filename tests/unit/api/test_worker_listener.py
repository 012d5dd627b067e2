"""What one API worker's asyncio server does with the shared listening socket: it takes a
few of the queued connections per wake-up (the rest are left to the other workers) and
leaves the kernel's queue as it was made."""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess

from slipway.api.run import ACCEPTS_PER_WAKEUP, WorkerListener
from slipway.graceful import listen

QUEUED = 48


def queue(port: int) -> tuple[int, int]:
    """The listening socket's connections waiting to be accepted and its queue size, as
    `ss` reports them (Recv-Q and Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    waiting, size = out.split()[1:3]
    return int(waiting), int(size)


async def test_each_wake_up_takes_a_share_of_the_queue_and_the_queue_stays() -> None:
    shared = listen("127.0.0.1", 0)
    port = shared.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(QUEUED)]
    assert queue(port) == (QUEUED, 1024)
    listener = WorkerListener(
        shared.family, shared.type, shared.proto, fileno=shared.dup().detach()
    )
    server = await asyncio.get_running_loop().create_server(
        asyncio.Protocol, sock=listener, backlog=ACCEPTS_PER_WAKEUP
    )
    try:
        waiting = [queue(port)[0]]
        for _ in range(100):
            await asyncio.sleep(0)  # one turn of the loop, at most one wake-up
            waiting.append(queue(port)[0])
        assert waiting[-1] == 0, waiting  # all taken in the end
        steps = [before - after for before, after in itertools.pairwise(waiting)]
        assert max(steps) <= ACCEPTS_PER_WAKEUP, waiting
        assert len([step for step in steps if step]) >= 3, waiting  # not all at once
        assert queue(port)[1] == 1024  # asyncio's listen(backlog) left it alone
    finally:
        server.close()
        for client in clients:
            client.close()
        shared.close()
