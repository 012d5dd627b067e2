"""What the platform tells its operator as it happens (an app deployed, and where): the
runner writes to a Redis stream, ``slipwayd up`` prints it under its banner."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from slipway.jobs.connection import sync_redis

KEY = "slipway:announcements"
log = logging.getLogger("slipway")


def announce(connection: redis.Redis, message: str) -> None:
    try:
        connection.xadd(KEY, {"m": message}, maxlen=1000, approximate=True)
    except redis.RedisError as error:
        log.warning("cannot announce %r: %s", message, error)


def follow(url: str, show: Callable[[str], None]) -> threading.Thread:
    """A thread that shows each new announcement, for as long as the process runs."""

    def run() -> None:
        last = "$"
        connection = sync_redis(url)
        while True:
            try:
                answer: Any = connection.xread({KEY: last}, block=2000)
            except redis.RedisError:
                time.sleep(1)
                continue
            for entry_id, fields in answer[0][1] if answer else []:
                last = entry_id
                show(fields[b"m"].decode(errors="replace"))

    thread = threading.Thread(target=run, name="announcements", daemon=True)
    thread.start()
    return thread
