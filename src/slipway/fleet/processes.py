"""Each app's instances as their runners report them: their states (a Redis hash per app,
``slipway:ps:APP_UID``, one field per instance), written at every change (starting, up,
crashed, stopping), what `slipway ps` shows; and their CPU and memory (``slipway:stats:
APP_UID``), sampled every few seconds, what `slipway stats` shows. The API reads them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis


def key(app_uid: str) -> str:
    return f"slipway:ps:{app_uid}"


@dataclass(frozen=True)
class ProcessState:
    name: str  # web.1
    kind: str
    index: int
    state: str  # starting, up, crashed, stopping
    release: int
    host: str  # the runner's
    pid: int | None
    port: int
    since: float  # Unix time of its last start
    restarts: int
    exit: str | None = None  # why it last ended (a crashed one)

    @property
    def field(self) -> str:
        """Unique among the app's instances, a replacement and the one it replaces too."""
        return f"{self.name}:{self.port}"


def report(connection: redis.Redis, app_uid: str, state: ProcessState) -> None:
    connection.hset(key(app_uid), state.field, json.dumps(asdict(state)))


def gone(connection: redis.Redis, app_uid: str, state: ProcessState) -> None:
    connection.hdel(key(app_uid), state.field)


def processes_of(connection: redis.Redis, app_uid: str) -> list[ProcessState]:
    found: Any = connection.hgetall(key(app_uid))
    states = [ProcessState(**json.loads(value)) for value in found.values()]
    return sorted(states, key=lambda s: (s.kind, s.index, s.since))


def forget(connection: redis.Redis, app_uid: str) -> None:
    connection.delete(key(app_uid), stats_key(app_uid))


def forget_other_hosts(connection: redis.Redis, app_uid: str, host: str) -> None:
    """The app moved to ``host``'s runner: what others reported no longer serves (their
    runner stops it when it comes back)."""
    stale = [state.field for state in processes_of(connection, app_uid) if state.host != host]
    if stale:
        connection.hdel(key(app_uid), *stale)


STATS_TTL = 30  # seconds: the samples of a runner that stopped sampling go


def stats_key(app_uid: str) -> str:
    return f"slipway:stats:{app_uid}"


@dataclass(frozen=True)
class InstanceStats:
    name: str
    port: int
    cpu_percent: float  # of one core, since the last sample
    memory: int  # bytes now
    memory_peak: int  # bytes, at most since it started
    memory_limit: int | None  # bytes, where it has one
    restarts: int
    at: float  # Unix time of the sample


def report_stats(connection: redis.Redis, app_uid: str, samples: list[InstanceStats]) -> None:
    """This runner's samples of the app's instances (and none of its stopped ones)."""
    pipe = connection.pipeline()
    pipe.delete(stats_key(app_uid))
    if samples:
        pipe.hset(
            stats_key(app_uid),
            mapping={f"{s.name}:{s.port}": json.dumps(asdict(s)) for s in samples},
        )
        pipe.expire(stats_key(app_uid), STATS_TTL)
    pipe.execute()


def stats_of(connection: redis.Redis, app_uid: str) -> list[InstanceStats]:
    found: Any = connection.hgetall(stats_key(app_uid))
    samples = [InstanceStats(**json.loads(value)) for value in found.values()]
    return sorted(samples, key=lambda s: (s.name, s.port))
