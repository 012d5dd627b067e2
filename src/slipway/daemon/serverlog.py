"""Structured logs for every server role: one line per event, as JSON or as ``key=value``.

Fields passed with ``extra={...}`` become fields of the line, so a job's jid, class, queue,
duration and outcome can be searched without parsing prose. A worker writes one line per job,
so formatting is kept cheap.
"""

from __future__ import annotations

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


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self._clock(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self._clock(record.created)} {record.levelname} {record.getMessage()}"
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line += f" {key}={value}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Log to stdout, one line per record, for a server process."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our lines never show the caller's file and line, so do not look for them
    # (the logging HOWTO's "Optimization" advice).
    logging._srcfile = None
    logging.logMultiprocessing = False
