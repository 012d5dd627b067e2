"""An app's log: the lines its instances write, the router's lines and the platform's
events, in one capped Redis stream per app (``slipway:logs:APP_UID``), so that they survive
redeploys and runner restarts and can be read from any host.

Each entry has the time (``t``, Unix milliseconds), its source (``s``: ``app``, ``router``
or ``slipway``), the instance (``i``: ``web.1``, ``run.3``...), the release (``v``), the
stream (``o``: ``stdout`` or ``stderr``) and the message (``m``, at most 10,000 bytes:
longer lines are split).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from redis.typing import EncodableT, FieldT

APP, ROUTER, PLATFORM = "app", "router", "slipway"
MAX_LINE = 10_000  # bytes


def stream_key(app_uid: str) -> str:
    return f"slipway:logs:{app_uid}"


@dataclass(frozen=True)
class Line:
    message: str
    source: str = APP
    instance: str = ""
    version: int | None = None
    stream: str = "stdout"
    time: float | None = None  # seconds; now when None

    def fields(self) -> dict[FieldT, EncodableT]:
        return {
            "t": int((self.time or time.time()) * 1000),
            "s": self.source,
            "i": self.instance,
            "v": self.version or 0,
            "o": self.stream,
            "m": self.message,
        }


def split(data: bytes) -> list[str]:
    """A line, in parts of at most MAX_LINE bytes (cut between UTF-8 characters)."""
    parts = []
    while len(data) > MAX_LINE:
        cut = MAX_LINE
        while cut > MAX_LINE - 3 and data[cut] & 0xC0 == 0x80:  # a continuation byte
            cut -= 1
        parts.append(data[:cut].decode(errors="replace"))
        data = data[cut:]
    parts.append(data.decode(errors="replace"))
    return parts


class AppLog:
    """Writes apps' log streams, each capped to ``max_lines`` and ``max_days``."""

    def __init__(self, connection: redis.Redis, max_lines: int, max_days: float) -> None:
        self.redis = connection
        self.max_lines = max_lines
        self.max_age_ms = int(max_days * 86_400_000)

    def write(self, app_uid: str, lines: list[Line]) -> None:
        if not lines:
            return
        pipe = self.redis.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(stream_key(app_uid), line.fields(), maxlen=self.max_lines, approximate=True)
        pipe.execute()

    def event(self, app_uid: str, message: str, instance: str = "", version: int = 0) -> None:
        """A platform event (release created, instance up, crashed...)."""
        self.write(app_uid, [Line(message, PLATFORM, instance, version)])

    def trim_old(self, app_uid: str) -> None:
        """Drop lines older than the age limit."""
        oldest = int(time.time() * 1000) - self.max_age_ms
        self.redis.xtrim(stream_key(app_uid), minid=oldest, approximate=True)

    def forget(self, app_uid: str) -> None:
        self.redis.delete(stream_key(app_uid))
