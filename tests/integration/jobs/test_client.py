"""The client writes exactly Sidekiq's payloads and commands."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from slipway.jobs import AsyncClient, Client
from slipway.jobs.payload import timestamp_seconds


def command_calls(raw: Any, name: str) -> int:
    stats = raw.info("commandstats").get(f"cmdstat_{name}", {})
    return int(stats.get("calls", 0))


def test_enqueue_writes_sidekiqs_payload(client: Client, raw: Any) -> None:
    before = time.time()
    jid = client.enqueue("default", "HardJob", [1, "two", {"three": [3.5, None, True]}])
    assert re.fullmatch(r"[0-9a-f]{24}", jid)
    assert raw.smembers("queues") == {"default"}
    [stored] = raw.lrange("queue:default", 0, -1)
    job = json.loads(stored)
    assert set(job) == {"class", "args", "queue", "retry", "jid", "created_at", "enqueued_at"}
    assert job["class"] == "HardJob"
    assert job["args"] == [1, "two", {"three": [3.5, None, True]}]
    assert job["queue"] == "default"
    assert job["retry"] is True
    assert job["jid"] == jid
    for field in ("created_at", "enqueued_at"):
        assert isinstance(job[field], float)
        assert before <= job[field] <= time.time()
    # Compact, as JSON.generate writes it.
    assert ", " not in stored and ": " not in stored


def test_non_ascii_is_kept_as_utf8(client: Client, raw: Any) -> None:
    client.enqueue("default", "HardJob", ["héllo", "日本", "🚀"])
    [stored] = raw.lrange("queue:default", 0, -1)
    assert '"héllo","日本","🚀"' in stored


def test_options_go_into_the_payload(client: Client, raw: Any) -> None:
    client.enqueue(
        "low", "HardJob", [], retry=5, backtrace=10, dead=False, tags=["a"], custom={"x": 1}
    )
    job = json.loads(raw.lrange("queue:low", 0, -1)[0])
    assert (job["retry"], job["backtrace"], job["dead"], job["tags"], job["custom"]) == (
        5,
        10,
        False,
        ["a"],
        {"x": 1},
    )


def test_push_is_one_transaction_of_sadd_and_lpush(client: Client, raw: Any) -> None:
    multi, sadd, lpush = (command_calls(raw, c) for c in ("multi", "sadd", "lpush"))
    client.enqueue("default", "HardJob", [1])
    assert command_calls(raw, "multi") == multi + 1
    assert command_calls(raw, "sadd") == sadd + 1
    assert command_calls(raw, "lpush") == lpush + 1


def test_bulk_is_one_lpush_in_order(client: Client, raw: Any) -> None:
    lpush = command_calls(raw, "lpush")
    jids = client.enqueue_bulk("default", "HardJob", [[i] for i in range(500)])
    assert command_calls(raw, "lpush") == lpush + 1
    assert len(set(jids)) == 500
    # LPUSH + BRPOP is FIFO: the tail holds the first job.
    stored = [json.loads(item) for item in raw.lrange("queue:default", 0, -1)]
    assert [job["args"] for job in reversed(stored)] == [[i] for i in range(500)]
    assert [job["jid"] for job in reversed(stored)] == jids


def test_scheduled_jobs_carry_neither_at_nor_enqueued_at(client: Client, raw: Any) -> None:
    before = time.time()
    jid = client.enqueue_in("default", "HardJob", 60, [1])
    at = datetime.now(UTC) + timedelta(hours=1)
    client.enqueue_at("critical", "HardJob", at, [2])
    entries = raw.zrange("schedule", 0, -1, withscores=True)
    assert len(entries) == 2
    (first, first_score), (second, second_score) = entries
    assert before + 60 <= first_score <= time.time() + 60
    assert second_score == pytest.approx(at.timestamp())
    for member in (first, second):
        job = json.loads(member)
        assert "at" not in job and "enqueued_at" not in job
        assert isinstance(job["created_at"], float)
    assert json.loads(first)["jid"] == jid
    assert json.loads(second)["queue"] == "critical"
    assert raw.exists("queue:default", "queues") == 0


def test_a_time_in_the_past_is_enqueued_at_once(client: Client, raw: Any) -> None:
    client.enqueue_at("default", "HardJob", time.time() - 10, [1])
    client.enqueue_in("default", "HardJob", 0, [2])
    assert raw.zcard("schedule") == 0
    assert raw.llen("queue:default") == 2


def test_enqueue_at_accepts_an_aware_datetime_in_any_zone(client: Client, raw: Any) -> None:
    at = datetime(2099, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    client.enqueue_at("default", "HardJob", at, [])
    assert raw.zscore("schedule", raw.zrange("schedule", 0, 0)[0]) == at.timestamp()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([datetime(2020, 1, 1)], r"args\[0\] is a datetime"),
        ([{"when": Decimal("1.5")}], r"args\[0\]\['when'\] is a Decimal"),
        ([[1, (2, 3)]], r"args\[0\]\[1\] is a tuple"),
        ([{1: "x"}], r"args\[0\] has the key 1 \(int\)"),
        ([float("nan")], r"args\[0\] is nan"),
        ([[float("inf")]], r"args\[0\]\[0\] is inf"),
        ([{"a": {"b": [{b"bytes"}]}}], r"args\[0\]\['a'\]\['b'\]\[0\] is a set"),
        ([object()], r"args\[0\] is a object"),
    ],
)
def test_non_json_args_are_refused_naming_the_path(
    client: Client, raw: Any, args: list[Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        client.enqueue("default", "HardJob", args)
    assert raw.dbsize() == 0


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.enqueue("default", "HardJob", "not a list"), TypeError),
        (lambda c: c.enqueue("default", "HardJob", {"a": 1}), TypeError),
        (lambda c: c.enqueue("", "HardJob", []), ValueError),
        (lambda c: c.enqueue("default", "", []), ValueError),
        (lambda c: c.enqueue("default", "HardJob", [], retry="true"), TypeError),
        (lambda c: c.enqueue("default", "HardJob", [], tags="a"), TypeError),
        (lambda c: c.enqueue("default", "HardJob", [], at=1), ValueError),
        (lambda c: c.enqueue("default", "HardJob", [], when=datetime.now()), TypeError),
        (lambda c: c.enqueue_at("default", "HardJob", datetime(2030, 1, 1), []), ValueError),
        (lambda c: c.enqueue_at("default", "HardJob", "tomorrow", []), TypeError),
        (lambda c: c.enqueue_in("default", "HardJob", datetime.now(UTC), []), TypeError),
        (lambda c: c.enqueue_bulk("default", "HardJob", "abc"), TypeError),
        (lambda c: c.enqueue_bulk("default", "HardJob", [[1], 2]), TypeError),
        (lambda c: c.enqueue_bulk("default", "HardJob", [[1], [2]], jid="a" * 24), ValueError),
    ],
)
def test_bad_calls_are_refused_and_write_nothing(
    client: Client, raw: Any, call: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(client)
    assert raw.dbsize() == 0


async def test_async_client_writes_the_same(redis_url: str, raw: Any) -> None:
    client = AsyncClient(redis_url)
    jid = await client.enqueue("default", "HardJob", [1])
    jids = await client.enqueue_bulk("default", "HardJob", [[2], [3]])
    await client.enqueue_in("default", "HardJob", 30, [4])
    await client.enqueue_at("default", "HardJob", time.time() + 30, [5])
    await client.aclose()
    stored = [json.loads(item) for item in raw.lrange("queue:default", 0, -1)]
    assert [job["jid"] for job in reversed(stored)] == [jid, *jids]
    assert raw.zcard("schedule") == 2


def test_namespace_prefixes_every_key_but_not_members(redis_url: str, raw: Any) -> None:
    client = Client(redis_url, namespace="acme")
    client.enqueue("default", "HardJob", [1])
    client.enqueue_in("default", "HardJob", 60, [1])
    assert sorted(raw.keys("*")) == ["acme:queue:default", "acme:queues", "acme:schedule"]
    assert raw.smembers("acme:queues") == {"default"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1700000000.25, 1700000000.25),  # Sidekiq up to 7.x: float seconds
        (1700000000250, 1700000000.25),  # Sidekiq 8: integer milliseconds
        (None, None),
    ],
)
def test_timestamps_are_read_in_both_formats(value: Any, seconds: float | None) -> None:
    assert timestamp_seconds(value) == seconds
