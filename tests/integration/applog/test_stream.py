"""AppLog writes a batch of lines in one script call: every line comes back from Redis as it
was written, whatever its bytes, in order and with its fields, and the stream stays capped."""

from __future__ import annotations

from typing import Any

from slipway.applog.stream import MAX_LINE, PLATFORM, ROUTER, AppLog, Line, stream_key
from slipway.jobs.connection import sync_redis

AWKWARD = [
    "plain",
    "",
    'quotes " and \\ backslashes \\" and {"json": [1, 2]}',
    "a NUL \x00 and control \x01\x1f characters, a tab\tand a carriage return\r",
    "a newline\ninside",
    "é, 漢字, emoji 🚀, and the separators \u2028\u2029",
    "x" * MAX_LINE,
    "-- ]] [[ ]=] lua's long brackets",
]


def test_lines_come_back_as_written(redis_url: str) -> None:
    connection = sync_redis(redis_url)
    lines = [
        Line(message, ROUTER if n % 2 else PLATFORM, f"web.{n}", n, "stderr", 1_700_000_000.5 + n)
        for n, message in enumerate(AWKWARD)
    ]
    AppLog(connection, 1000, 7).write("app1", lines)
    entries: Any = connection.xrange(stream_key("app1"))
    assert [
        {key.decode(): value.decode() for key, value in fields.items()} for _, fields in entries
    ] == [
        {
            "t": str(1_700_000_000_500 + n * 1000),
            "s": ROUTER if n % 2 else PLATFORM,
            "i": f"web.{n}",
            "v": str(n),
            "o": "stderr",
            "m": message,
        }
        for n, message in enumerate(AWKWARD)
    ]


def test_the_stream_stays_near_its_cap_and_keeps_the_newest(redis_url: str) -> None:
    connection = sync_redis(redis_url)
    applog = AppLog(connection, 500, 7)
    for batch in range(10):
        applog.write("app1", [Line(f"{batch}-{n}") for n in range(300)])
    length = connection.xlen(stream_key("app1"))
    assert 500 <= length < 700  # trimmed by whole nodes (~), never below the cap
    last: Any = connection.xrevrange(stream_key("app1"), count=1)
    assert last[0][1][b"m"] == b"9-299"
    applog.write("app1", [])  # nothing to write: no call
    assert connection.xlen(stream_key("app1")) == length
