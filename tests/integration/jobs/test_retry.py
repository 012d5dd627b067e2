"""Failures follow Sidekiq's job_retry.rb to the letter."""

from __future__ import annotations

import json
import time
from typing import Any

from slipway.jobs import Client
from slipway.jobs.retry import DEAD_TIMEOUT, uncompress_backtrace
from tests import sample_jobs
from tests.jobs_support import eventually, worker


def push_raw(raw: Any, **job: Any) -> None:
    """A payload written by some other client, e.g. without ``retry``."""
    job = {"queue": "default", "args": [], "jid": "f" * 24, "created_at": time.time(), **job}
    raw.sadd("queues", job["queue"])
    raw.lpush(f"queue:{job['queue']}", json.dumps(job))


def only(raw: Any, key: str) -> tuple[dict[str, Any], float]:
    [(member, score)] = raw.zrange(key, 0, -1, withscores=True)
    return json.loads(member), score


async def test_first_failure_schedules_a_retry_in_15_to_24_s(client: Client, raw: Any) -> None:
    async with worker(raw_url(raw)):
        jid = client.enqueue("default", "fail", ["x" * 20_000])
        await eventually(lambda: raw.zcard("retry") == 1)
    job, score = only(raw, "retry")
    assert job["jid"] == jid and job["retry_count"] == 0
    assert job["error_class"] == "ValueError"
    assert job["error_message"] == "x" * 10_000  # truncated as Sidekiq does
    assert "retried_at" not in job and "error_backtrace" not in job
    assert job["failed_at"] + 15 <= score <= job["failed_at"] + 24 + 0.01
    assert int(raw.get("stat:failed") or 0) == 1


def raw_url(raw: Any) -> str:
    kwargs = raw.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


async def test_a_later_failure_counts_up_and_keeps_failed_at(client: Client, raw: Any) -> None:
    failed_at = time.time() - 100
    client.enqueue("default", "fail", ["again"], retry_count=4, failed_at=failed_at)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.zcard("retry") == 1)
    job, score = only(raw, "retry")
    assert job["retry_count"] == 5 and job["failed_at"] == failed_at
    assert abs(job["retried_at"] - time.time()) < 5
    # count 5: 5**4 + 15 = 640 s, plus rand(10) * 6
    assert job["retried_at"] + 640 <= score <= job["retried_at"] + 694 + 0.01


async def test_retry_zero_goes_straight_to_the_dead_set(client: Client, raw: Any) -> None:
    client.enqueue("default", "fail", ["zero"], retry=0)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.zcard("dead") == 1)
    job, score = only(raw, "dead")
    assert job["retry_count"] == 0 and job["error_message"] == "zero"
    assert abs(score - time.time()) < 5
    assert raw.zcard("retry") == 0


async def test_retry_false_drops_the_job_after_counting_it(client: Client, raw: Any) -> None:
    client.enqueue("default", "fail", ["dropped"], retry=False)
    push_raw(raw, **{"class": "fail_without_retry"})  # no retry field: the job's option
    async with worker(raw_url(raw)) as w:
        await eventually(
            lambda: w.processor.counters.failed == 2 or int(raw.get("stat:failed") or 0) == 2
        )
    assert raw.zcard("retry") == 0 and raw.zcard("dead") == 0
    assert raw.llen("queue:default") == 0


async def test_an_integer_retry_is_the_number_of_retries(client: Client, raw: Any) -> None:
    client.enqueue("default", "fail", ["last"], retry=2, retry_count=1)
    client.enqueue("default", "fail", ["one more"], retry=2, retry_count=0)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.zcard("dead") == 1 and raw.zcard("retry") == 1)
    dead, _ = only(raw, "dead")
    retry, _ = only(raw, "retry")
    assert (dead["args"], dead["retry_count"]) == (["last"], 2)
    assert (retry["args"], retry["retry_count"]) == (["one more"], 1)


async def test_retries_exhausted_hook_then_dead_unless_dead_false(client: Client, raw: Any) -> None:
    sample_jobs.exhausted.clear()
    jid = "e" * 24
    push_raw(raw, **{"class": "fail_exhausted", "jid": jid})
    client.enqueue("default", "fail", ["not kept"], retry=0, dead=False)
    async with worker(raw_url(raw)):
        await eventually(lambda: sample_jobs.exhausted and raw.get("stat:failed") == "2")
    assert sample_jobs.exhausted == [(jid, "exhausted")]
    dead, _ = only(raw, "dead")
    assert dead["jid"] == jid and dead["error_class"] == "RuntimeError"


async def test_retry_in_hook_sets_the_delay_discards_or_kills(client: Client, raw: Any) -> None:
    push_raw(raw, **{"class": "fail_with_custom_delay"})
    client.enqueue("default", "fail_and_discard", [])
    client.enqueue("default", "fail_and_kill", [])
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.get("stat:failed") == "3")
    retry, score = only(raw, "retry")
    assert retry["class"] == "fail_with_custom_delay" and retry["retry"] == 3
    assert retry["failed_at"] + 1000 <= score <= retry["failed_at"] + 1009 + 0.01
    dead, _ = only(raw, "dead")
    assert dead["class"] == "fail_and_kill"  # and the discarded one is nowhere


async def test_retry_queue_and_backtrace_lines(client: Client, raw: Any) -> None:
    client.enqueue("default", "fail", ["bt"], retry_queue="low", backtrace=1)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.zcard("retry") == 1)
    job, _ = only(raw, "retry")
    assert job["queue"] == "low"
    encoded = job["error_backtrace"]
    lines = encoded.split("\n")
    assert lines[-1] == "" and all(len(line) == 60 for line in lines[:-2])  # Base64.encode64
    assert len(uncompress_backtrace(encoded)) == 1
    assert uncompress_backtrace(encoded)[0].endswith(":in `fail'")


async def test_unknown_class_is_a_name_error_and_retried(client: Client, raw: Any) -> None:
    client.enqueue("default", "NotDeployedYet", [1])
    client.enqueue("default", "NotDeployedEither", [2], retry=False)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.get("stat:failed") == "2")
    job, _ = only(raw, "retry")
    assert (job["class"], job["error_class"]) == ("NotDeployedYet", "NameError")
    assert job["error_message"] == "uninitialized constant NotDeployedYet"
    assert raw.zcard("dead") == 0


async def test_the_dead_set_is_trimmed_by_size_and_age(client: Client, raw: Any) -> None:
    now = time.time()
    raw.zadd("dead", {"ancient": now - DEAD_TIMEOUT - 10})
    pipe = raw.pipeline(transaction=False)
    for i in range(10_000):
        pipe.zadd("dead", {f"old-{i}": now - 1000 + i * 0.01})
    pipe.execute()
    jid = client.enqueue("default", "fail", ["newest"], retry=0)
    async with worker(raw_url(raw)):
        await eventually(lambda: raw.get("stat:failed") == "1")
    assert raw.zcard("dead") == 9_999
    assert raw.zscore("dead", "ancient") is None
    newest = json.loads(raw.zrange("dead", -1, -1)[0])
    assert newest["jid"] == jid
