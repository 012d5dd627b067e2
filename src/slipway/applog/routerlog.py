"""The router's line per request, into the app's log (``slipway[router]``): the runner
binds the datagram socket HAProxy logs to, and knows which host is which app.

A line reads ``GET /path?query 200 1234 bytes 5 ms web.1 request_id=...``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from slipway.applog.stream import ROUTER, AppLog, Line

log = logging.getLogger("slipway.runtime")

BATCH = 1000  # datagrams at most per write to Redis


class RouterLog:
    def __init__(
        self,
        path: Path,
        applog: AppLog,
        apps: Callable[[str, float], tuple[str, int] | None],
    ) -> None:
        """``apps``: (host, when its line came) → (app uid, release version), or None."""
        self.applog = applog
        self.apps = apps
        path.unlink(missing_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.socket.settimeout(0.5)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(2)
        self.socket.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                datagrams = [self.socket.recv(9000)]
            except TimeoutError:
                continue
            except OSError:
                return
            received_at = time.monotonic()
            self.socket.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while len(datagrams) < BATCH:
                    datagrams.append(self.socket.recv(9000))
            self.socket.settimeout(0.5)
            try:
                self.write(datagrams, received_at)
            except redis.RedisError as error:
                log.warning("router lines lost: %s", error)

    def write(self, datagrams: list[bytes], received_at: float) -> None:
        lines: dict[str, list[Line]] = {}
        for datagram in datagrams:
            parsed = self.parse(datagram, received_at)
            if parsed is not None:
                lines.setdefault(parsed[0], []).append(parsed[1])
        for app_uid, found in lines.items():
            self.applog.write(app_uid, found)

    def parse(self, datagram: bytes, received_at: float) -> tuple[str, Line] | None:
        fields = datagram.decode(errors="replace").rstrip("\n").split("\t")
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
