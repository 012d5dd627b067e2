"""Reads an app's log stream (slipway.applog.stream) as ``slipway logs`` shows it: the last lines
that match, then, when following, every new one, from the position the backlog ended at, so
that nothing is missed or shown twice between the two; and from any position again, for a
follower that lost its connection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from slipway.applog.stream import stream_key

PAGE = 1000  # entries per read of the backlog
MAX_BLOCK = 2.0  # seconds a follow's read waits (under Redis' 5 s read timeout)
INSTANCE = re.compile(r"^([A-Za-z0-9_-]+?)(?:[.-]([0-9]+))?$")


@dataclass(frozen=True)
class Entry:
    id: str
    time: float  # seconds
    source: str
    instance: str
    release: int
    stream: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds"),
            "source": self.source,
            "instance": self.instance,
            "release": self.release,
            "stream": self.stream,
            "message": self.message,
        }


@dataclass(frozen=True)
class Match:
    """Which lines to show: by process type or instance (``web``, ``web.1``, ``web-1``,
    several with ``|``) and by source."""

    types: frozenset[str] = frozenset()
    instances: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, filter_: str | None, sources: list[str] | None = None) -> Match:
        types, instances = set(), set()
        for part in (filter_ or "").split("|"):
            part = part.strip()
            if not part:
                continue
            found = INSTANCE.match(part)
            if found is None:
                raise ValueError(f"not a process type or instance: {part!r}")
            kind, index = found.groups()
            if index is None:
                types.add(kind)
            else:
                instances.add(f"{kind}.{int(index)}")
        return cls(frozenset(types), frozenset(instances), frozenset(sources or []))

    def __call__(self, entry: Entry) -> bool:
        if self.sources and entry.source not in self.sources:
            return False
        if not self.types and not self.instances:
            return True
        return entry.instance in self.instances or entry.instance.split(".")[0] in self.types


def backlog(
    connection: redis.Redis,
    app_uid: str,
    match: Match,
    lines: int,
    since: float | None = None,
    after: str | None = None,
) -> tuple[list[Entry], str]:
    """The last ``lines`` matching entries (all of them after ``after`` or since ``since``,
    in seconds), oldest first, and the stream's position once they are read: a follow
    from there misses nothing and repeats nothing."""
    key = stream_key(app_uid)
    newest: Any = connection.xrevrange(key, "+", "-", count=1)
    position = _text(newest[0][0]) if newest else "0-0"
    if after is not None or since is not None:
        start = f"({after}" if after is not None else f"{int((since or 0) * 1000)}-0"
        found = []
        while True:
            rows: Any = connection.xrange(key, start, position, count=PAGE)
            found += [e for e in map(_entry, rows) if match(e)]
            if len(rows) < PAGE:
                break
            start = f"({_text(rows[-1][0])}"
        return (found[-lines:] if after is None else found), position
    found, end = [], position
    while len(found) < lines:
        rows = connection.xrevrange(key, end, "-", count=PAGE)
        found += [e for e in map(_entry, rows) if match(e)]
        if len(rows) < PAGE:
            break
        end = f"({_text(rows[-1][0])}"
    return list(reversed(found[:lines])), position


def follow(
    connection: redis.Redis, app_uid: str, match: Match, position: str
) -> Iterator[list[Entry]]:
    """The matching entries after ``position``, as they come, a batch per read; an empty
    one after each wait with nothing new (time for a keep-alive)."""
    key = stream_key(app_uid)
    while True:
        answer: Any = connection.xread({key: position}, count=PAGE, block=int(MAX_BLOCK * 1000))
        if not answer:
            yield []
            continue
        rows = answer[0][1]
        position = _text(rows[-1][0])
        yield [entry for entry in map(_entry, rows) if match(entry)]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _entry(row: Any) -> Entry:
    entry_id, fields = row
    values = {_text(k): _text(v) for k, v in fields.items()}
    return Entry(
        id=_text(entry_id),
        time=int(values.get("t", "0")) / 1000,
        source=values.get("s", "app"),
        instance=values.get("i", ""),
        release=int(values.get("v", "0") or 0),
        stream=values.get("o", "stdout"),
        message=values.get("m", ""),
    )
