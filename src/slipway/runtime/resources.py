"""What the runner of a host shares with the one-offs it runs beside its instances, so that
neither needs the other: settings, Redis, where releases are unpacked and output is written,
the log shipper, the cgroups, and the PORTs handed out."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import redis

from slipway.applog.ship import LogShipper
from slipway.config import Settings
from slipway.host.ports import free_port
from slipway.runtime.cgroups import Cgroups


class Ports:
    """The PORTs this runner's instances and one-offs hold: each new one is free on the host
    and held by none of them (one may be free only because its process is starting)."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> int:
        while True:
            port = free_port()
            with self._lock:
                if port not in self._held:
                    self._held.add(port)
                    return port

    def hold(self, port: int) -> None:
        """A port an adopted instance listens on."""
        with self._lock:
            self._held.add(port)

    def release(self, port: int) -> None:
        with self._lock:
            self._held.discard(port)


@dataclass(frozen=True)
class RunnerResources:
    settings: Settings
    redis: redis.Redis
    releases_dir: Path
    logs_dir: Path
    logs: LogShipper
    cgroups: Cgroups | None
    ports: Ports
