"""The worker: queue order, concurrency, bad payloads, heartbeat, stats and the command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from slipway.jobs import Client
from tests.jobs_support import WorkerProcess, eventually, results, worker


async def test_strict_order_drains_earlier_queues_first(redis_url: str, client: Client) -> None:
    client.enqueue_bulk("low", "record", [["low", i] for i in range(30)])
    client.enqueue_bulk("high", "record", [["high", i] for i in range(30)])
    async with worker(redis_url, queues=["high", "low"], concurrency=1):
        ran = await asyncio.to_thread(results, redis_url, 60)
    assert [queue for queue, _ in ran] == ["high"] * 30 + ["low"] * 30
    assert [i for _, i in ran[:30]] == list(range(30))  # FIFO within a queue


async def test_weighted_order_follows_the_weights(redis_url: str, client: Client) -> None:
    client.enqueue_bulk("a", "record", [["a"]] * 300)
    client.enqueue_bulk("b", "record", [["b"]] * 300)
    async with worker(redis_url, queues=["a", "a", "a", "b"], strict=False, concurrency=1):
        ran = await asyncio.to_thread(results, redis_url, 200)
    first = Counter(queue for [queue] in ran[:200])
    # P(a first) = 3/4: 150 of 200 expected, 6 standard deviations either side.
    assert 114 <= first["a"] <= 186, first


async def test_concurrency_bounds_jobs_in_flight(redis_url: str, client: Client) -> None:
    client.enqueue_bulk("default", "sleep", [[0.3, str(i)] for i in range(9)])
    started = time.monotonic()
    async with worker(redis_url, concurrency=3) as w:
        peak = 0
        while (
            int(w.processor.counters.processed)
            + int(redis.Redis.from_url(redis_url).get("stat:processed") or 0)
            < 9
        ):
            peak = max(peak, len(w.processor.busy))
            await asyncio.sleep(0.01)
    assert peak == 3
    assert 0.85 <= time.monotonic() - started < 3


async def test_a_sync_job_never_blocks_async_ones(redis_url: str, client: Client) -> None:
    client.enqueue("default", "sleep", [1.0, "sync"])
    async with worker(redis_url, concurrency=2):
        await eventually(lambda: client.redis.llen("results") == 1)  # the sync job started
        client.enqueue("default", "AsyncRecord", ["during"])
        ran = await asyncio.to_thread(results, redis_url, 3)
    assert ran == [["start", "sync"], ["async", "during"], ["end", "sync"]]


@pytest.mark.parametrize(
    ("payload", "in_dead"),
    [
        ("not json at all", "not json at all"),
        ('{"class": "record", "args": [1]', '{"class": "record", "args": [1]'),  # truncated
        ("[1, 2, 3]", "[1, 2, 3]"),
        ('"just a string"', '"just a string"'),
        ('{"args": [1], "jid": "a"}', "the payload has no class"),
        ('{"class": "record", "args": {"a": 1}}', "the payload's args is not a list"),
        ('{"class": "record", "args": "x"}', "the payload's args is not a list"),
        ('{"class": "record"}', "the payload's args is not a list"),
        ('{"class": 42, "args": []}', "the payload has no class"),
    ],
)
async def test_unrunnable_payloads_go_to_the_dead_set(
    redis_url: str, raw: Any, payload: str, in_dead: str
) -> None:
    raw.lpush("queue:default", payload)
    raw.lpush("queue:default", json.dumps({"class": "record", "args": ["after"]}))
    async with worker(redis_url):
        await eventually(lambda: raw.zcard("dead") == 1 and raw.llen("results") == 1)
    [dead] = raw.zrange("dead", 0, -1)
    assert in_dead in dead
    if in_dead != payload:  # a JSON object: the reason is written into it
        assert json.loads(dead)["error_class"] == "InvalidJob"
    assert raw.get("stat:failed") == "1" and raw.get("stat:processed") == "2"


async def test_a_one_megabyte_argument_runs(redis_url: str, client: Client) -> None:
    big = "é" * 500_000 + "x" * 10
    client.enqueue("default", "record", [big, list(range(1000))])
    async with worker(redis_url):
        [ran] = await asyncio.to_thread(results, redis_url, 1)
    assert ran == [big, list(range(1000))]


async def test_heartbeat_publishes_the_process_and_its_work(
    redis_url: str, client: Client, raw: Any
) -> None:
    client.enqueue("default", "sleep", [1.5, "busy"])
    async with worker(redis_url, concurrency=4, queues=["default", "other"]) as w:
        await eventually(lambda: raw.hget(w.identity, "busy") == "1")
        assert raw.smembers("processes") == {w.identity}
        fields = raw.hgetall(w.identity)
        info = json.loads(fields["info"])
        assert info["identity"] == w.identity and info["concurrency"] == 4
        assert info["queues"] == ["default", "other"] and isinstance(info["started_at"], float)
        assert fields["quiet"] == "false" and int(fields["rss"]) > 1000
        assert int(fields["rtt_us"]) > 0 and abs(float(fields["beat"]) - time.time()) < 2
        assert 0 < raw.ttl(w.identity) <= 60
        for key in (f"{w.identity}:work", f"{w.identity}:workers"):
            [work] = raw.hgetall(key).values()
            work = json.loads(work)
            assert work["queue"] == "default" and isinstance(work["run_at"], int)
            assert isinstance(work["payload"], str)  # the job JSON, as a string
            assert json.loads(work["payload"])["args"] == [1.5, "busy"]
    # A clean stop removes the process at once.
    assert raw.smembers("processes") == set()
    assert not raw.exists(f"{w.identity}:work", f"{w.identity}:workers")


async def test_stats_are_counted_in_totals_and_daily_keys(
    redis_url: str, client: Client, raw: Any
) -> None:
    client.enqueue_bulk("default", "noop", [[i] for i in range(5)])
    client.enqueue("default", "fail", ["x"], retry=False)
    async with worker(redis_url):
        await eventually(lambda: raw.get("stat:processed") == "6")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert raw.get(f"stat:processed:{day}") == "6"
    assert raw.get("stat:failed") == raw.get(f"stat:failed:{day}") == "1"
    assert raw.ttl(f"stat:processed:{day}") > 4 * 365 * 24 * 3600


async def test_retry_and_schedule_sets_are_polled(redis_url: str, client: Client, raw: Any) -> None:
    client.enqueue_in("default", "record", 0.5, ["scheduled"])
    raw.zadd(
        "retry",
        {
            json.dumps(
                {
                    "class": "record",
                    "args": ["retried"],
                    "queue": "default",
                    "jid": "b" * 24,
                    "retry": True,
                    "retry_count": 0,
                }
            ): 1.0
        },
    )
    async with worker(redis_url):
        ran = await asyncio.to_thread(results, redis_url, 2)
    assert sorted(ran) == [["retried"], ["scheduled"]]
    assert raw.zcard("schedule") == raw.zcard("retry") == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    slipwayd = Path(sys.executable).parent / "slipwayd"
    return subprocess.run(
        [str(slipwayd), "worker", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "400"},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-q", "a", "-q", "a"], "queue 'a' cannot be given twice"),
        (["-q", "a,x"], "the weight must be an integer"),
        (["-q", "a,-1"], "the weight cannot be negative"),
        (["-q", ",3"], "the name is empty"),
        (["-c", "0"], "Input should be greater than or equal to 1"),
        (["-r", "/nonexistent/jobs.py"], "cannot load /nonexistent/jobs.py: no such file"),
        (["-r", "no_such_module_here"], "cannot load no_such_module_here: No module named"),
        (["--log-format", "xml"], "must be text or json"),
    ],
)
def test_the_command_refuses_bad_options(args: list[str], message: str) -> None:
    result = run_cli("--redis-url", "redis://127.0.0.1:1/0", *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_command_runs_jobs_from_a_file(redis_url: str, client: Client) -> None:
    client.enqueue("default", "record", ["from the cli"])
    with WorkerProcess(redis_url, "--log-format", "json") as process:
        assert results(redis_url, 1) == [["from the cli"]]
        process.stop()
        assert process.wait() == 0
        output = process.output()
    lines = [json.loads(line) for line in output.splitlines()]
    done = [line for line in lines if line.get("outcome") == "done"]
    assert done and done[0]["class"] == "record" and done[0]["queue"] == "default"
    assert len(done[0]["jid"]) == 24 and done[0]["duration_ms"] >= 0
