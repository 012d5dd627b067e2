"""Which runners serve the platform: each one says it is alive every few seconds (a Redis
hash, ``slipway:runners``); the API places an app on one of the live ones."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

KEY = "slipway:runners"
EVERY = 5.0  # seconds between a runner's heartbeats
ALIVE_FOR = 20.0  # seconds without one before a runner counts as gone


def heartbeat(connection: redis.Redis, name: str, address: str, run_port: int = 0) -> None:
    """``address``: where the router and the API reach it; ``run_port``: where it takes
    one-off processes."""
    beat = {"address": address, "run_port": run_port, "seen": time.time()}
    connection.hset(KEY, name, json.dumps(beat))


def leave(connection: redis.Redis, name: str) -> None:
    connection.hdel(KEY, name)


def runners(connection: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every runner heard from: its ``address`` and when it was last ``seen``."""
    found: Any = connection.hgetall(KEY)
    return {name.decode(): json.loads(info) for name, info in found.items()}


def alive(connection: redis.Redis) -> list[str]:
    """The names of the runners heard from lately."""
    now = time.time()
    return sorted(
        name for name, info in runners(connection).items() if now - info["seen"] < ALIVE_FOR
    )
