"""Ships what instances write to their app's log stream (slipway.applog.stream).

Instances write to files (``DATA_DIR/logs/APP_UID/web-1-PORT.stdout``, ``.stderr``), not to
pipes: an instance must not die of a broken pipe when the runner restarts. One thread reads what is
new in every file a few times a second, cuts it into lines and writes them to Redis, with a
per-instance cap: over ``lines_per_minute`` lines are dropped until the minute ends, with
one notice saying so.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from slipway.applog.stream import APP, MAX_LINE, PLATFORM, AppLog, Line, split

log = logging.getLogger("slipway.runtime")

EVERY = 0.1  # seconds between reads
READ_AT_MOST = 1 << 20  # bytes per file and read
TRUNCATE_AT = 16 << 20  # a file read to its end past this size starts again at 0
WINDOW = 60.0  # seconds of the rate cap
TRIM_EVERY = 300.0  # seconds between trims of old lines


@dataclass
class Tail:
    """What is left to read of one instance's output file."""

    path: Path
    base: Path  # the instance's files, without their suffix
    app_uid: str
    instance: str
    version: int
    stream: str
    budget: Budget
    offset: int = 0
    partial: bytes = b""
    closing: bool = False  # its instance stopped: read to the end, then forget it
    at_end: bool = False  # the last read reached the end of the file


@dataclass
class Budget:
    """An instance's lines this minute (its stdout and stderr share it)."""

    limit: int
    window_start: float = field(default_factory=time.monotonic)
    used: int = 0
    dropped: int = 0

    def take(self) -> bool | None:
        """True: ship the line; False: drop it; None: drop it, the first one dropped in
        this window (time for the notice)."""
        now = time.monotonic()
        if now - self.window_start >= WINDOW:
            self.window_start, self.used, self.dropped = now, 0, 0
        if self.used < self.limit:
            self.used += 1
            return True
        self.dropped += 1
        return None if self.dropped == 1 else False


class LogShipper:
    def __init__(self, applog: AppLog, lines_per_minute: int) -> None:
        self.applog = applog
        self.lines_per_minute = lines_per_minute
        self._tails: list[Tail] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._trimmed: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def watch(
        self,
        base: Path,
        app_uid: str,
        instance: str,
        version: int,
        offsets: dict[str, int] | None = None,
    ) -> None:
        """Ship ``base.stdout`` and ``base.stderr``: a new instance's output (the files
        are made empty), or an adopted one's from the ``offsets`` shipped already."""
        base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        budget = Budget(self.lines_per_minute)
        tails = []
        for stream in ("stdout", "stderr"):
            path = base.with_name(f"{base.name}.{stream}")
            if offsets is None:
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"):
                    pass
            offset = (offsets or {}).get(stream, 0)
            tails.append(Tail(path, base, app_uid, instance, version, stream, budget, offset))
        with self._lock:
            self._tails += tails

    def offsets(self, base: Path) -> dict[str, int]:
        """How much of each of an instance's files is shipped (a partial line is not)."""
        with self._lock:
            return {
                t.stream: max(0, t.offset - len(t.partial)) for t in self._tails if t.base == base
            }

    def close(self, base: Path) -> None:
        """Its instance stopped: ship the rest, then remove the files."""
        with self._lock:
            for tail in self._tails:
                if tail.base == base:
                    tail.closing = True

    def event(self, app_uid: str, message: str, instance: str = "", version: int = 0) -> None:
        try:
            self.applog.event(app_uid, message, instance, version)
        except redis.RedisError as error:
            log.warning("cannot log %r for %s: %s", message, app_uid, error)

    def stop(self) -> None:
        """Ship what is left, then stop."""
        self._stopping.set()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                self.ship()
            except Exception:
                log.exception("shipping logs failed")
            if stopping:
                return
            self._stopping.wait(EVERY)

    def ship(self) -> None:
        with self._lock:
            tails = list(self._tails)
        where = [(tail, tail.offset, tail.partial) for tail in tails]
        lines: dict[str, list[Line]] = {}
        for tail in tails:
            lines.setdefault(tail.app_uid, []).extend(self._read(tail))
        try:
            for app_uid, found in lines.items():
                self.applog.write(app_uid, found)
        except redis.RedisError:
            for tail, offset, partial in where:  # read again next time: nothing is lost
                tail.offset, tail.partial = offset, partial
            raise
        for tail in tails:
            if tail.at_end and tail.offset > TRUNCATE_AT and not tail.partial:
                os.truncate(tail.path, 0)  # the instance appends (O_APPEND): it goes on at 0
                tail.offset = 0
        for app_uid in lines:
            if time.monotonic() - self._trimmed.get(app_uid, 0) > TRIM_EVERY:
                self._trimmed[app_uid] = time.monotonic()
                self.applog.trim_old(app_uid)
        with self._lock:
            for tail in [t for t in tails if t.closing and t.offset < 0]:
                self._tails.remove(tail)
                tail.path.unlink(missing_ok=True)

    def _read(self, tail: Tail) -> list[Line]:
        """New lines of the file; a closing tail read to its end gets offset -1."""
        closing = tail.closing  # read after it was set: what follows is all there is
        try:
            with open(tail.path, "rb") as file:
                file.seek(tail.offset)
                data = file.read(READ_AT_MOST)
        except FileNotFoundError:
            data = b""
        tail.offset += len(data)
        chunks = (tail.partial + data).split(b"\n")
        tail.partial = chunks.pop()
        at_end = len(data) < READ_AT_MOST
        if tail.partial and (len(tail.partial) >= MAX_LINE or (closing and at_end)):
            chunks.append(tail.partial)  # a long line still going, or the last one
            tail.partial = b""
        now = time.time()
        lines = []
        for chunk in chunks:
            for message in split(chunk.rstrip(b"\r")):
                taken = tail.budget.take()
                if taken:
                    lines.append(Line(message, APP, tail.instance, tail.version, tail.stream, now))
                elif taken is None:
                    lines.append(
                        Line(
                            f"{tail.instance} wrote over {tail.budget.limit} lines this minute:"
                            " lines are dropped until the minute is over",
                            PLATFORM,
                            tail.instance,
                            tail.version,
                            time=now,
                        )
                    )
        tail.at_end = at_end
        if closing and at_end:
            tail.offset = -1
        return lines
