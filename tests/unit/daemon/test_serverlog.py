"""The worker's fast line per job reads as logging would write it, and is flushed once per
turn of the event loop; a logger that logging would treat differently does not get it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from slipway.daemon.serverlog import hot_lines, setup_logging

FIELDS = {"jid": "a1b2", "class": "NoopJob", "queue": "default", "outcome": "done"}


class CountingStream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


@pytest.fixture
def stream() -> Iterator[CountingStream]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield CountingStream()
    root.handlers[:] = handlers
    root.setLevel(level)


def setup(stream: CountingStream, log_format: str = "text") -> None:
    """setup_logging, writing to ``stream`` instead of stdout (which pytest swaps)."""
    setup_logging(log_format)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def without_time(line: str) -> str:
    return line.split(" ", 1)[1]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_hot_line_reads_as_the_logged_one(stream: CountingStream, log_format: str) -> None:
    setup(stream, log_format)
    logger = logging.getLogger("slipway.jobs.job")
    logger.info("done", extra=FIELDS)
    lines = hot_lines(logger)
    assert lines is not None
    lines.write(logger, "done", FIELDS)
    logged, hot = stream.getvalue().splitlines()
    if log_format == "json":
        logged_line, hot_line = json.loads(logged), json.loads(hot)
        assert logged_line.pop("time")[:10] == hot_line.pop("time")[:10]
        assert (
            logged_line
            == hot_line
            == {"level": "info", "logger": "slipway.jobs.job", "message": "done", **FIELDS}
        )
    else:
        assert without_time(logged) == without_time(hot)
        assert without_time(hot) == "INFO done jid=a1b2 class=NoopJob queue=default outcome=done"


def test_hot_lines_are_flushed_once_per_turn_of_the_loop(stream: CountingStream) -> None:
    setup(stream)
    logger = logging.getLogger("slipway.jobs.job")
    lines = hot_lines(logger)
    assert lines is not None

    async def burst() -> tuple[int, int]:
        for _ in range(100):
            lines.write(logger, "done", FIELDS)
        before = stream.flushes
        await asyncio.sleep(0)
        return before, stream.flushes

    assert asyncio.run(burst()) == (0, 1)
    assert len(stream.getvalue().splitlines()) == 100
    lines.write(logger, "done", FIELDS)  # no loop running: flushed at once
    assert stream.flushes == 2


def test_loggers_that_logging_treats_differently_go_through_logging(
    stream: CountingStream,
) -> None:
    setup(stream)
    own_handler = logging.getLogger("hot.handler")
    own_handler.addHandler(logging.NullHandler())
    filtered = logging.getLogger("hot.filter")
    filtered.addFilter(lambda record: False)
    not_propagated = logging.getLogger("hot.alone")
    not_propagated.propagate = False
    parent_handler = logging.getLogger("hot.parent")
    parent_handler.addHandler(logging.NullHandler())
    quiet = logging.getLogger("hot.quiet")
    quiet.setLevel(logging.WARNING)
    try:
        for logger in (own_handler, filtered, not_propagated, quiet):
            assert hot_lines(logger) is None, logger.name
        assert hot_lines(logging.getLogger("hot.parent.child")) is None
        assert hot_lines(logging.getLogger("hot.plain")) is not None
        logging.getLogger().addHandler(logging.NullHandler())  # a second root handler
        assert hot_lines(logging.getLogger("hot.plain")) is None
    finally:
        own_handler.handlers.clear()
        filtered.filters.clear()
        not_propagated.propagate = True
        parent_handler.handlers.clear()
        quiet.setLevel(logging.NOTSET)
