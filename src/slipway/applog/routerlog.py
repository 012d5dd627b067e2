"""The router's line per request, into the app's log (``slipway[router]``): HAProxy keeps
the lines in a ring (a buffer in its memory) and streams them to the runner of the router's
host, which knows which host is which app.

A stream and not datagrams: a Unix datagram socket queues 10 of them
(``net.unix.max_dgram_qlen``), and beyond that HAProxy drops the line, a third of them at
full load on 2 cores. The ring holds the lines while the reader catches up (or is being
upgraded). The listening socket is held by ``slipwayd up`` and handed to each runner, as
HAProxy spins while nothing listens where its ring sends.

A line reads ``GET /path?query 200 1234 bytes 5 ms web.1 request_id=...``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from slipway.applog.stream import ROUTER, AppLog, Line
from slipway.graceful import inherited_sockets
from slipway.router import LOG_LINE_MAX

log = logging.getLogger("slipway.runtime")

SOCKET_NAME = "routerlog"  # of the listening socket handed over (slipway.graceful)
READ_SIZE = 256 * 1024
GATHER = 0.02  # seconds the reader lets lines gather after a read: fewer, larger writes
STOP_TIMEOUT = 5.0  # seconds to read and store what HAProxy sent before a stop


def listen_for_lines(path: Path) -> socket.socket:
    """The Unix stream socket HAProxy's ring connects to, for the runner's user only."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(previous)
    sock.listen(16)
    return sock


def router_log_listener(path: Path) -> socket.socket:
    """The socket handed to this process (by ``slipwayd up``, systemd, or the runner it
    upgrades), else a new one, which an upgrade passes on."""
    sockets = inherited_sockets()
    if SOCKET_NAME not in sockets:
        sockets[SOCKET_NAME] = listen_for_lines(path)
    return sockets[SOCKET_NAME]


class RouterLog:
    def __init__(
        self,
        listener: socket.socket,
        applog: AppLog,
        apps: Callable[[str, float], tuple[str, int] | None],
    ) -> None:
        """``apps``: (host, when its line came) → (app uid, release version), or None."""
        self.applog = applog
        self.apps = apps
        self.listener = listener
        self.listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        self._partial: dict[socket.socket, bytes] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading, once what HAProxy has sent is read: what it sends next waits in
        its ring for the next reader (a runner's upgrade loses no line)."""
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT)

    def _run(self) -> None:
        while not self._stopping.is_set():
            lines: list[bytes] = []
            for key, _ in self._selector.select(0.5):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    lines += self._read(key.fileobj) or []  # type: ignore[arg-type]
            if lines:
                self._write(lines)
                self._stopping.wait(GATHER)
        lines = []  # what is left to read, once
        for connection in list(self._partial):
            while (read := self._read(connection)) is not None:
                lines += read
            connection.close()
        self._write(lines)
        self._selector.close()

    def _write(self, lines: list[bytes]) -> None:
        try:
            self.write(lines, time.monotonic())
        except redis.RedisError as error:
            log.warning("router lines lost: %s", error)

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            connection, _ = self.listener.accept()
            connection.setblocking(False)
            self._selector.register(connection, selectors.EVENT_READ)
            self._partial[connection] = b""

    def _read(self, connection: socket.socket) -> list[bytes] | None:
        """The whole lines that came, or None if nothing did (or the connection closed)."""
        try:
            data = connection.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        if not data:  # HAProxy closed it (a reload): it connects again
            self._selector.unregister(connection)
            self._partial.pop(connection, None)
            connection.close()
            return None
        lines = (self._partial[connection] + data).split(b"\n")
        rest = lines.pop()
        self._partial[connection] = rest if len(rest) <= LOG_LINE_MAX else b""
        return lines

    def write(self, lines: list[bytes], received_at: float) -> None:
        found: dict[str, list[Line]] = {}
        for raw in lines:
            parsed = self.parse(raw, received_at)
            if parsed is not None:
                found.setdefault(parsed[0], []).append(parsed[1])
        for app_uid, app_lines in found.items():
            self.applog.write(app_uid, app_lines)

    def parse(self, raw: bytes, received_at: float) -> tuple[str, Line] | None:
        fields = raw.decode(errors="replace").split("\t")
        if len(fields) != 8:
            return None
        host, method, uri, status, size, total_ms, server, request_id = fields
        app = self.apps(host, received_at)
        if app is None:
            return None
        instance = _instance(server)
        message = f"{method} {uri} {status} {size} bytes {total_ms} ms {instance}"
        return app[0], Line(f"{message} request_id={request_id}", ROUTER, instance, app[1])


class RoutedHosts:
    """host → the app routed there and its release, as runners route them (a Redis hash
    ``slipway:routes``): the router's lines name hosts; apps may run on any runner.

    A runner sets a host here before the router sends it traffic, so a line whose host the
    last read lacks is looked up again if that read began before the line came: no line of
    a just-routed app is lost, and made-up hosts cost at most one read per batch of lines."""

    KEY = "slipway:routes"
    FRESH_FOR = 2.0  # seconds a read of the hash is used for, unless it lacks the host

    def __init__(self, connection: redis.Redis) -> None:
        self.redis = connection
        self._known: dict[str, tuple[str, int]] = {}
        self._read_at = 0.0

    def set(self, host: str, app_uid: str, version: int) -> None:
        self.redis.hset(self.KEY, host, f"{app_uid} {version}")

    def forget(self, host: str) -> None:
        self.redis.hdel(self.KEY, host)

    def app(self, host: str, line_at: float) -> tuple[str, int] | None:
        """The app and release routed at ``host`` when its line (received at ``line_at``,
        monotonic) came."""
        stale = time.monotonic() - self._read_at > self.FRESH_FOR
        if stale or (host not in self._known and self._read_at < line_at):
            began = time.monotonic()
            found: Any = self.redis.hgetall(self.KEY)
            self._known = {}
            for key, value in found.items():
                uid, _, version = value.decode().partition(" ")
                self._known[key.decode()] = (uid, int(version))
            self._read_at = began
        return self._known.get(host)


def _instance(server: str) -> str:
    """``web-1-34567`` (the router's name for web.1 on port 34567) → ``web.1``."""
    kind, _, rest = server.rpartition("-")[0].rpartition("-")
    return f"{kind}.{rest}" if kind and rest.isdigit() else "none"
