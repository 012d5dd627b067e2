"""An app's log: the lines its instances write, the router's lines and the platform's
events, in one capped Redis stream per app (``slipway:logs:APP_UID``), so that they survive
redeploys and runner restarts and can be read from any host.

Each entry has the time (``t``, Unix milliseconds), its source (``s``: ``app``, ``router``
or ``slipway``), the instance (``i``: ``web.1``, ``run.3``...), the release (``v``), the
stream (``o``: ``stdout`` or ``stderr``) and the message (``m``, at most 10,000 bytes:
longer lines are split).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

APP, ROUTER, PLATFORM = "app", "router", "slipway"
MAX_LINE = 10_000  # bytes

# XADD to the stream KEYS[1], capped near ARGV[1] entries, each line of the JSON array
# ARGV[2]: [t, s, i, v, o, m], all strings. One argument for all the lines: the client packs
# each argument in Python, which cost more than Redis's work per line.
APPEND = """
local cap = ARGV[1]
for _, f in ipairs(cjson.decode(ARGV[2])) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*',
    't', f[1], 's', f[2], 'i', f[3], 'v', f[4], 'o', f[5], 'm', f[6])
end
return 0
"""


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

    def flat(self) -> list[str]:
        """Its fields, as APPEND takes them."""
        return [
            str(int((self.time or time.time()) * 1000)),
            self.source,
            self.instance,
            str(self.version or 0),
            self.stream,
            self.message,
        ]


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
        self._append = connection.register_script(APPEND)

    def write(self, app_uid: str, lines: list[Line]) -> None:
        """Append ``lines`` in one call to Redis, a script that adds them one by one: XADDs in
        a pipeline cost the client ten times as much, and the router writes a line per
        request."""
        if not lines:
            return
        batch = json.dumps([line.flat() for line in lines], ensure_ascii=False)
        self._append(keys=[stream_key(app_uid)], args=[self.max_lines, batch])

    def event(self, app_uid: str, message: str, instance: str = "", version: int = 0) -> None:
        """A platform event (release created, instance up, crashed...)."""
        self.write(app_uid, [Line(message, PLATFORM, instance, version)])

    def trim_old(self, app_uid: str) -> None:
        """Drop lines older than the age limit."""
        oldest = int(time.time() * 1000) - self.max_age_ms
        self.redis.xtrim(stream_key(app_uid), minid=oldest, approximate=True)

    def forget(self, app_uid: str) -> None:
        self.redis.delete(stream_key(app_uid))
