"""The API as a process: uvicorn on a socket that upgrades hand over, HUP to upgrade."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from slipway.api.app import create_app
from slipway.api.http_limits import HttpLimits, limited_protocol
from slipway.config import Settings
from slipway.graceful import listen
from slipway.graceful.lifecycle import Lifecycle
from slipway.graceful.prefork import Prefork
from slipway.store.db import Database

log = logging.getLogger("slipway.api")

GRACEFUL_TIMEOUT = 300  # seconds in-flight requests get when the API stops
FIRST_REQUEST_GRACE = 1.0  # seconds a just-accepted connection gets to send its request


class DrainingServer(uvicorn.Server):
    """uvicorn, but a connection accepted just before a stop is served, not closed.

    uvicorn's shutdown closes every connection without a request in progress, including one
    whose first request is still on its way: its client sees "disconnected without a
    response" and, the connection being new, cannot tell whether to retry. So we stop
    accepting first and give such connections a moment to send their request. It also closes
    WebSockets at once; we let them run.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, except that a WebSocket (a `slipway run` session) is not
        closed: it runs to its end, however long after the other connections' deadline."""
        for server in self.servers:
            server.close()
        await asyncio.sleep(0.1)  # asyncio finishes setting up the connections it accepted
        if self.server_state.connections:
            await asyncio.sleep(FIRST_REQUEST_GRACE)
        for connection in list(self.server_state.connections):
            if not isinstance(connection, WebSocketsSansIOProtocol):
                connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        while self.server_state.connections and not self.force_exit:
            sessions = any(
                isinstance(c, WebSocketsSansIOProtocol) for c in self.server_state.connections
            )
            if not sessions and loop.time() > deadline:
                for task in self.server_state.tasks:
                    task.cancel(msg="the graceful shutdown's time is over")
                break
            await asyncio.sleep(0.1)
        if not self.force_exit:
            await self.lifespan.shutdown()


def uvicorn_config(settings: Settings, app: ASGIApp) -> uvicorn.Config:
    """uvicorn as the API runs it (tests too): httptools with head limits and deadlines
    (api.http_limits), WebSockets for `slipway run` (websockets' sans-I/O protocol, frames of
    at most 1 MiB), and forwarded addresses believed only from the configured proxies."""
    limits = HttpLimits(
        header_timeout=settings.api_header_timeout, max_connections=settings.api_max_connections
    )
    return uvicorn.Config(
        app,
        http=limited_protocol(limits),
        ws="websockets-sansio",
        ws_max_size=2**20,
        timeout_keep_alive=settings.api_keep_alive_timeout,
        proxy_headers=bool(settings.api_trusted_proxies),
        forwarded_allow_ips=settings.api_trusted_proxies,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT,
    )


POLLED = "/internal/changes"


class QuietPolls(logging.Filter):
    """Leave out the access log lines of the gateways' reads of /internal/changes: each
    gateway asks three times a second, which would bury every other line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        # uvicorn's access record: (client, method, path, http version, status)
        return not (len(args) == 5 and str(args[2]).startswith(POLLED) and args[4] == 200)


ACCEPTS_PER_WAKEUP = 16


class WorkerListener(socket.socket):
    """The shared listening socket as one worker's asyncio server sees it.

    asyncio accepts up to ``backlog`` connections each time the socket is readable, and
    calls ``listen(backlog)`` on it. Every worker is woken by a new connection; taking a
    few each (ACCEPTS_PER_WAKEUP) spreads a burst, such as 200 clients connecting at once,
    over the workers, where the first one awake would otherwise take them all and keep them
    (keep-alive). One each spreads them as well but accepts a burst slowly under load: p99
    went from 0.2 to 1.2 s in bench/api.py at 200 connections. ``listen`` is left alone,
    or the kernel's queue on the shared socket would shrink to ACCEPTS_PER_WAKEUP.
    """

    def listen(self, _backlog: int = 0) -> None:
        """The socket listens already, with the queue it was made with."""


def serve_api(settings: Settings, database: Database, workers: int) -> int:
    """The API's manager (slipway.graceful.prefork): ``workers`` processes share the HTTP
    socket; HUP upgrades them all. The app is built here, before the fork, so that a bad
    setting stops the start with its message and each worker starts in milliseconds."""
    logging.getLogger("uvicorn.access").addFilter(QuietPolls())
    try:
        app = create_app(settings, database)
    except ValueError as error:  # a setting it cannot start with, such as a short secret
        raise SystemExit(f"slipwayd api: {error}") from None
    database.dispose()  # no connection crosses the fork: each worker opens its own
    lifecycle = Lifecycle("api", pid_file=settings.data_dir / "api.pid")
    sock = lifecycle.listener("http", lambda: listen(settings.host, settings.http_port))
    # The connection cap is the API's: each worker takes its share.
    share = -(-settings.api_max_connections // workers)
    config = uvicorn_config(settings.model_copy(update={"api_max_connections": share}), app)
    config.backlog = ACCEPTS_PER_WAKEUP  # see WorkerListener

    def worker(ready: Callable[[], None]) -> None:
        asyncio.run(_serve(config, sock, ready))

    return Prefork(lifecycle, workers, worker).serve()


async def _serve(config: uvicorn.Config, sock: socket.socket, ready: Callable[[], None]) -> None:
    """One worker: uvicorn until TERM, which lets its requests finish."""
    server = DrainingServer(config)
    listener = WorkerListener(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    loop = asyncio.get_running_loop()
    # uvicorn handles TERM and INT itself (it stops accepting and lets requests finish), then
    # raises them again once done: these handlers take that second delivery quietly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: None)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if serving.done():
            await serving  # it failed to start: raise why
            return
        await asyncio.sleep(0.01)
    ready()
    await serving
