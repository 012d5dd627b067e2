"""Which instances serve which app, switched start-before-stop.

An app's host (``APP.DOMAIN``) maps to a slot (a backend of the router's fixed pool); its
ready instances are the slot's servers. A switch adds the new servers first, then takes the
old ones out of rotation and deletes them once their requests are done: a request is never
sent to an instance that is about to stop, and none is cut.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from slipway.host.filelock import exclusive
from slipway.router.haproxy import RouterFiles, slot_name
from slipway.router.runtime import RouterError, RuntimeApi

REAP_FOR = 300.0  # seconds leftover servers are retried for (they go with a router restart)


@dataclass(frozen=True)
class Target:
    """An instance that serves HTTP: its server name in the router (unique in its app, e.g.
    ``web-1-v3``), and where it listens."""

    name: str
    address: str
    port: int


class Router:
    def __init__(self, files: RouterFiles, slots: int, domain: str = "localhost") -> None:
        self.files = files
        self.slots = slots
        self.domain = domain
        self.runtime = RuntimeApi(files.admin_socket)
        self._lock = threading.Lock()
        self._leftovers: set[tuple[str, str]] = set()  # out of rotation, to delete
        self._reaper = threading.Thread()

    def host(self, app: str) -> str:
        return f"{app}.{self.domain}".lower()

    def routes(self) -> dict[str, str]:
        """host → slot, as the router has it."""
        return self.runtime.map_entries(self.files.hosts_map)

    def targets(self, app: str) -> list[Target]:
        """The instances the app's requests go to."""
        slot = self.routes().get(self.host(app))
        if slot is None:
            return []
        servers = self.runtime.servers(slot)
        return [Target(s.name, s.address, s.port) for s in servers if s.in_rotation]

    def switch(self, app: str, targets: list[Target], drain_timeout: float = 30.0) -> None:
        """Route the app to ``targets`` and to them only (none: the app answers 503)."""
        with self._lock, exclusive(self.files.directory / "routes.lock"):  # other runners too
            slot = self._slot(app)
            current = {s.name: s for s in self.runtime.servers(slot)}
            wanted = {t.name: t for t in targets}
            for target in targets:
                existing = current.get(target.name)
                if existing is not None and (existing.address, existing.port) != (
                    target.address,
                    target.port,
                ):
                    raise RouterError(f"{app}: {target.name} is already routed elsewhere")
                if existing is None:
                    self.runtime.add_server(slot, target.name, target.address, target.port)
                elif not existing.in_rotation:  # back (a restarted instance): not a leftover
                    self._leftovers.discard((slot, target.name))
                    self.runtime.enable_server(slot, target.name)
            self._route(app, slot)
            leaving = [name for name in current if name not in wanted]
            for name in leaving:
                self.runtime.drain_server(slot, name)
        self._retire(slot, leaving, drain_timeout)

    def unroute(self, app: str, drain_timeout: float = 30.0) -> None:
        """The app answers 404 again (it is gone); its servers are retired."""
        with self._lock, exclusive(self.files.directory / "routes.lock"):
            slot = self.routes().get(self.host(app))
            if slot is None:
                return
            self.runtime.del_map(self.files.hosts_map, self.host(app))
            self._save_map()
            leaving = [s.name for s in self.runtime.servers(slot)]
            for name in leaving:
                self.runtime.drain_server(slot, name)
        self._retire(slot, leaving, drain_timeout)

    def _retire(self, slot: str, names: list[str], drain_timeout: float) -> None:
        """Wait until servers out of rotation have finished their requests (or the
        timeout); they are deleted then, or once HAProxy's idle connections to them close
        (when their instance stops), by a thread of their own."""
        deadline = time.monotonic() + drain_timeout
        for name in names:
            while self.runtime.sessions(slot, name) and time.monotonic() < deadline:
                time.sleep(0.05)
            with self._lock:
                if not self.runtime.del_server(slot, name):
                    self._leftovers.add((slot, name))
        if self._leftovers and not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        deadline = time.monotonic() + REAP_FOR
        while self._leftovers and time.monotonic() < deadline:
            time.sleep(0.5)
            with self._lock:
                for slot, name in list(self._leftovers):
                    try:
                        if self.runtime.del_server(slot, name):
                            self._leftovers.discard((slot, name))
                    except RouterError:
                        self._leftovers.discard((slot, name))

    def _slot(self, app: str) -> str:
        routes = self.routes()
        existing = routes.get(self.host(app))
        if existing is not None:
            return existing
        used = set(routes.values())
        for index in range(1, self.slots + 1):
            if slot_name(index) not in used:
                return slot_name(index)
        raise RouterError(f"the router has no free slot for {app} (SLIPWAY_ROUTER_SLOTS)")

    def _route(self, app: str, slot: str) -> None:
        if self.routes().get(self.host(app)) != slot:
            self.runtime.set_map(self.files.hosts_map, self.host(app), slot)
            self._save_map()

    def _save_map(self) -> None:
        """The map file too, so that a restarted router routes the same hosts."""
        lines = "".join(f"{host} {slot}\n" for host, slot in sorted(self.routes().items()))
        temporary = self.files.hosts_map.with_suffix(".tmp")
        temporary.write_text(lines)
        os.replace(temporary, self.files.hosts_map)
