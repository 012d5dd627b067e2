"""A deployment's build output, as a Redis stream: the worker writes it line by line, the
pusher's hook and ``slipway deployment-logs -f`` read it as it grows.

Each entry is a line (``l``), or the last one, the end (``end``: the final status, with
``reason``). The stream is capped, and expires some days after its end: the store keeps the
log of a finished deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

MAX_LINES = 10_000
MAX_LINE = 10_000  # bytes: longer lines are split, as Heroku does
KEEP_SECONDS = 7 * 24 * 3600
MAX_BLOCK = 2.0  # seconds a read waits for new entries


BUILDER_ALIVE_TTL = 15  # seconds: the hook's sign that a worker still builds


def stream_key(deployment_id: int) -> str:
    return f"slipway:deploy:{deployment_id}"


def builder_alive_key(deployment_id: int) -> str:
    """Set, with a short expiry, by the worker while it builds (its heartbeat)."""
    return f"slipway:deploy:{deployment_id}:builder"


@dataclass(frozen=True)
class Entry:
    id: str
    line: str | None = None
    end: str | None = None  # the final status, on the last entry
    reason: str = ""


def split_line(line: str) -> list[str]:
    encoded = line.encode()
    if len(encoded) <= MAX_LINE:
        return [line]
    return [
        encoded[i : i + MAX_LINE].decode(errors="replace") for i in range(0, len(encoded), MAX_LINE)
    ]


class BuildLog:
    def __init__(self, connection: redis.Redis, deployment_id: int) -> None:
        self.redis = connection
        self.key = stream_key(deployment_id)

    def write(self, line: str) -> None:
        for part in split_line(line):
            self.redis.xadd(self.key, {"l": part}, maxlen=MAX_LINES, approximate=True)

    def end(self, status: str, reason: str = "") -> None:
        pipe = self.redis.pipeline()
        pipe.xadd(self.key, {"end": status, "reason": reason}, maxlen=MAX_LINES, approximate=True)
        pipe.expire(self.key, KEEP_SECONDS)
        pipe.execute()

    def read(self, after: str = "0", block: float | None = None) -> list[Entry]:
        """Entries after the id ``after``; waits up to ``block`` seconds for the first."""
        rows: Any
        if block is None:
            rows = self.redis.xrange(self.key, f"({after}" if after != "0" else "-", "+")
        else:  # blocked less than the connection's read timeout (5 s), which would end it
            wait = min(block, MAX_BLOCK)
            answer: Any = self.redis.xread({self.key: after}, block=max(1, int(wait * 1000)))
            rows = answer[0][1] if answer else []
        return [_entry(entry_id, fields) for entry_id, fields in rows]

    def follow(self, poll: float = 5.0) -> Iterator[Entry | None]:
        """Every entry up to the end; None after each ``poll`` seconds without any (for
        keep-alives and for checking that the reader is still wanted)."""
        last = "0"
        while True:
            entries = self.read(last, block=poll)
            if not entries:
                yield None
                continue
            for entry in entries:
                yield entry
                if entry.end is not None:
                    return
            last = entries[-1].id


def _entry(entry_id: bytes | str, fields: dict[bytes | str, bytes | str]) -> Entry:
    def text(value: bytes | str | None) -> str | None:
        return value.decode(errors="replace") if isinstance(value, bytes) else value

    values = {text(k): text(v) for k, v in fields.items()}
    return Entry(
        id=text(entry_id) or "",
        line=values.get("l"),
        end=values.get("end"),
        reason=values.get("reason") or "",
    )
