"""Structured logs for every server role: one line per event, as JSON or as ``key=value``.

Fields passed with ``extra={...}`` become fields of the line, so a job's jid, class, queue,
duration and outcome can be searched without parsing prose. A worker writes one line per job,
so formatting is kept cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any

# Record attributes that are not fields of the line (uvicorn adds a coloured message copy).
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class _Clock:
    """ISO 8601 UTC timestamps; the part up to the second is computed once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class LineFormatter(logging.Formatter):
    """A record as one line, JSON or ``key=value`` text; ``line`` also serves
    :class:`HotLines`, which has no record."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        error = self.formatException(record.exc_info) if record.exc_info else None
        message = record.getMessage()
        return self.line(
            record.created, record.levelname, record.name, message, _fields(record), error
        )

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        error: str | None = None,
    ) -> str:
        if self.as_json:
            entry = {
                "time": self._clock(created),
                "level": level.lower(),
                "logger": logger,
                "message": message,
                **fields,
            }
            if error:
                entry["error"] = error
            return json.dumps(entry, ensure_ascii=False, default=str)
        text = f"{self._clock(created)} {level} {message}"
        for key, value in fields.items():
            text += f" {key}={value}"
        if error:
            text += "\n" + error
        return text


class HotLines:
    """The worker's line per job, without the logging module's work per record (a third of
    a no-op job's cost): formatted as the handler would, written to its stream, and flushed
    once per turn of the event loop instead of once per line.

    Only for a logger at INFO whose records reach our handler unchanged (no handler or
    filter of its own): anything else goes through logging as usual."""

    def __init__(self, handler: logging.StreamHandler[Any], formatter: LineFormatter) -> None:
        self.handler = handler
        self.formatter = formatter
        self._flush_pending = False

    def write(self, logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
        line = self.formatter.line(time.time(), "INFO", logger.name, message, fields)
        with self.handler.lock or contextlib.nullcontext():
            self.handler.stream.write(line + "\n")
        if not self._flush_pending:
            try:
                asyncio.get_running_loop().call_soon(self._flush)
                self._flush_pending = True
            except RuntimeError:  # no event loop here: flush now
                self.handler.flush()

    def _flush(self) -> None:
        self._flush_pending = False
        self.handler.flush()


_hot_lines: HotLines | None = None


def hot_lines(logger: logging.Logger) -> HotLines | None:
    """The fast writer for ``logger``'s INFO lines, if setup_logging made the only handler
    they reach and nothing filters them; else None."""
    if _hot_lines is None or not logger.isEnabledFor(logging.INFO):
        return None
    node: logging.Logger | None = logger
    while node is not None and node is not logging.getLogger():
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    root = logging.getLogger()
    if root.handlers != [_hot_lines.handler] or _hot_lines.handler.filters:
        return None
    return _hot_lines


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stdout, one line per record, for a server process."""
    global _hot_lines
    handler = logging.StreamHandler(sys.stdout)
    formatter = LineFormatter(as_json=log_format == "json")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _hot_lines = HotLines(handler, formatter)
    # Our lines never show the caller's file and line, so do not look for them
    # (the logging HOWTO's "Optimization" advice).
    logging._srcfile = None
    logging.logMultiprocessing = False
