"""Pure parts of slipway.jobs: payloads, queue parsing, retry arithmetic, periodic ticks."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slipway import jobs
from slipway.jobs.client import build_job
from slipway.jobs.fetch import queue_order
from slipway.jobs.launcher import parse_queues
from slipway.jobs.payload import dumps, loads
from slipway.jobs.periodic import Periodic
from slipway.jobs.registry import lookup
from slipway.jobs.retry import compress_backtrace, retry_delay, truthy, uncompress_backtrace
from slipway.jobs.threads import JobThreads

# Every JSON-native value: unicode (no lone surrogates: not UTF-8), big integers, nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8), children, max_size=5
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.lists(json_values, max_size=6))
def test_payload_round_trips_any_json_native_args(args: list[Any]) -> None:
    job = build_job("default", "AnyJob", args, {})
    decoded = loads(dumps(job).encode("utf-8"))  # as it comes back from Redis
    assert decoded["args"] == args
    assert json.loads(dumps(job)) == decoded  # plain JSON, readable by anyone


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1))
def test_non_ascii_text_is_written_as_is(text: str) -> None:
    assert dumps([text]) == "[" + json.dumps(text, ensure_ascii=False) + "]"


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(TypeError, match=r"args\[0\] is a str with a lone surrogate"):
        build_job("default", "X", ["\udc80"], {})


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], (["default"], True)),
        (["critical", "default", "low"], (["critical", "default", "low"], True)),
        (["a,3", "b,1"], (["a", "a", "a", "b"], False)),
        (["a,0", "b"], (["a", "b"], True)),  # weight 0 keeps strict order, as Sidekiq
        ([" a ,2"], (["a", "a"], False)),
    ],
)
def test_queues_parse_as_sidekiq_does(specs: list[str], expected: tuple[list[str], bool]) -> None:
    assert parse_queues(specs) == expected


def test_queue_order_strict_and_weighted() -> None:
    assert queue_order(["a", "b", "c"], strict=True) == ["a", "b", "c"]
    firsts = [queue_order(["a", "a", "a", "b"], strict=False)[0] for _ in range(4000)]
    assert all(sorted(queue_order(["a", "a", "b"], strict=False)) == ["a", "b"] for _ in range(50))
    assert 2800 <= firsts.count("a") <= 3200  # 3/4 of the time


@pytest.mark.parametrize(
    ("count", "low", "high"),
    [(0, 15, 24), (1, 16, 34), (5, 640, 694), (10, 10015, 10114), (24, 331791, 332040)],
)
def test_retry_delay_is_sidekiqs_formula(count: int, low: int, high: int) -> None:
    delays = {retry_delay(count) for _ in range(500)}
    assert min(delays) >= low and max(delays) <= high
    assert len(delays) > 5  # the jitter is there


def test_a_custom_delay_replaces_the_formula_but_keeps_the_jitter() -> None:
    assert all(100 <= retry_delay(0, 100) <= 109 for _ in range(100))
    assert all(15 <= retry_delay(0, 0) <= 24 for _ in range(100))  # not positive: the formula


def test_ruby_truthiness() -> None:
    assert truthy(0) and truthy("") and truthy(True) and truthy([])
    assert not truthy(None) and not truthy(False)


def test_backtrace_encoding_is_base64_encode64_of_deflate() -> None:
    lines = [f"/app/job.py:{i}:in `perform'" for i in range(40)]
    encoded = compress_backtrace(lines)
    rows = encoded.split("\n")
    assert rows[-1] == "" and all(len(row) == 60 for row in rows[:-2])
    assert 0 < len(rows[-2]) <= 60
    assert uncompress_backtrace(encoded) == lines
    assert uncompress_backtrace(lines) == lines  # the legacy raw array


def test_periodic_ticks_follow_the_wall_clock_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")

    @jobs.job(name="unit_periodic_probe")
    def probe() -> None:
        pass

    entry = Periodic("probe", "0 9 * * *", probe, paris)
    before = datetime(2026, 3, 28, 6, 0, tzinfo=paris).timestamp()
    first = entry.next_tick(before)
    second = entry.next_tick(first)
    assert datetime.fromtimestamp(first, paris).hour == 9
    assert datetime.fromtimestamp(second, paris).hour == 9
    assert second - first == 23 * 3600  # the night the clocks go forward


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: jobs.periodic("61 * * * *"), ValueError, "invalid cron expression"),
        (lambda: jobs.periodic("* * * * *", tz="Mars/Olympus"), ValueError, "unknown time zone"),
        (lambda: jobs.periodic("* * * * *")(lambda: None), TypeError, "above @job"),  # type: ignore[arg-type]
        (lambda: jobs.periodic("* * * * *", args=[object()]), TypeError, r"args\[0\]"),
    ],
)
def test_periodic_declarations_are_checked(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_job_decorator_keeps_the_function_callable_and_refuses_a_second_name() -> None:
    @jobs.job(name="unit_add", queue="math", retry=3, backtrace=True)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert lookup("unit_add") is add and add.queue == "math" and not add.is_async
    with pytest.raises(ValueError, match="already registered"):
        jobs.job(name="unit_add")(lambda: None)
    with pytest.raises(TypeError, match="retry must be"):
        jobs.job(retry="yes")  # type: ignore[arg-type]


async def test_job_threads_return_results_and_raise_errors() -> None:
    threads = JobThreads(3)
    threads.start(asyncio.get_running_loop())
    try:
        assert await threads.run(pow, 2, 10) == 1024
        assert sorted(await asyncio.gather(*(threads.run(abs, -i) for i in range(50)))) == list(
            range(50)
        )
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 / 0)
        with pytest.raises(ValueError, match="math domain"):
            await threads.run(math.sqrt, -1)
    finally:
        threads.stop()


async def test_a_cancelled_wait_does_not_break_the_threads() -> None:
    threads = JobThreads(1)
    threads.start(asyncio.get_running_loop())
    import time

    slow = asyncio.ensure_future(threads.run(time.sleep, 0.2))
    await asyncio.sleep(0.05)
    slow.cancel()
    assert await threads.run(str, 42) == "42"  # ran after the slow one, which was ignored
    threads.stop()
