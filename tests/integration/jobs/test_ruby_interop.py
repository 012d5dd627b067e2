"""Both directions against the real Ruby Sidekiq 6.4.1: Python ⇄ Ruby, same Redis layout."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis

from slipway.jobs import Client
from slipway.jobs.retry import compress_backtrace
from tests.jobs_support import RUBY_JOBS, eventually, results, ruby, worker
from tests.services import Sidekiq


def test_python_enqueues_and_ruby_runs_now_in_at_and_bulk(redis_url: str) -> None:
    client = Client(redis_url)
    args = [1, "é日本🚀", {"nested": [1.5, None, True, {"deep": "x"}]}, 2**70]
    start = time.time()
    with Sidekiq(redis_url, RUBY_JOBS) as sidekiq:
        client.enqueue("default", "RecordJob", args)
        client.enqueue_in("default", "RecordJob", 1.5, ["in"])
        client.enqueue_at("default", "RecordJob", time.time() + 1.5, ["at"])
        client.enqueue_bulk("default", "RecordJob", [["bulk", i] for i in range(3)])
        ran = results(redis_url, 6, timeout=20)
        assert sidekiq.process.poll() is None, sidekiq.output()  # type: ignore[union-attr]
    # Big integers, unicode and nesting arrive unchanged; Ruby's threads run in any order.
    expected = [args, ["in"], ["at"], *(["bulk", i] for i in range(3))]
    assert sorted(map(json.dumps, ran)) == sorted(map(json.dumps, expected))
    assert time.time() - start >= 1.5


async def test_ruby_enqueues_and_python_runs(redis_url: str) -> None:
    async with worker(redis_url, queues=["python", "default"]):
        ruby(
            redis_url,
            """
            PyRecord.perform_async(1, "two", {"three" => 3})
            PyRecord.perform_in(1, "later")
            Sidekiq::Client.push("class" => "record", "args" => ["pushed", 2**70])
            Sidekiq::Client.push_bulk("class" => "AsyncRecord", "args" => [[1], [2]])
        """,
        )
        ran = await asyncio.to_thread(results, redis_url, 5, 15)
    assert ["py", 1, "two", {"three": 3}] in ran
    assert ["pushed", 2**70] in ran
    assert ["async", 1] in ran and ["async", 2] in ran
    assert ["py", "later"] in ran


async def test_a_failing_python_job_is_a_ruby_retry_and_ruby_retries_it(redis_url: str) -> None:
    client = Client(redis_url)
    async with worker(redis_url):
        jid = client.enqueue("default", "fail", ["first"], backtrace=True)
        await eventually(lambda: client.redis.zcard("retry") == 1)
        seen = json.loads(
            ruby(
                redis_url,
                """
            job = Sidekiq::RetrySet.new.first
            puts JSON.generate({
              "klass" => job.klass, "args" => job.args, "jid" => job.jid, "queue" => job.queue,
              "error_class" => job["error_class"], "error_message" => job["error_message"],
              "retry_count" => job["retry_count"], "failed_at" => job["failed_at"],
              "backtrace" => job.error_backtrace, "at" => job.at.to_f,
              "stats_retry" => Sidekiq::Stats.new.retry_size})
        """,
            )
        )
        assert seen["klass"] == "fail" and seen["args"] == ["first"] and seen["jid"] == jid
        assert seen["queue"] == "default"
        assert (seen["error_class"], seen["error_message"]) == ("ValueError", "first")
        assert seen["retry_count"] == 0 and isinstance(seen["failed_at"], float)
        assert seen["backtrace"][0].endswith(":in `fail'")  # Ruby decodes our backtrace
        assert seen["failed_at"] + 15 <= seen["at"] <= seen["failed_at"] + 25
        assert seen["stats_retry"] == 1

        ruby(redis_url, "Sidekiq::RetrySet.new.retry_all")
        await eventually(
            lambda: client.redis.zcard("retry") == 1 and client.redis.llen("results") == 2
        )
        raw: Any = redis.Redis.from_url(redis_url)
        again = json.loads(raw.zrange("retry", 0, 0)[0])
        assert again["jid"] == jid
        # Ruby's "retry" gave back one retry, the new failure used it again.
        assert again["retry_count"] == 0 and "retried_at" in again


async def test_python_worker_shows_in_ruby_processes_workers_and_stats(redis_url: str) -> None:
    client = Client(redis_url)
    async with worker(redis_url, concurrency=7, queues=["default", "low"], tag="py") as w:
        client.enqueue("default", "noop", [])
        client.enqueue("default", "fail", ["x"])
        client.enqueue("default", "sleep", [2, "slow"])
        await eventually(lambda: client.redis.llen("results") == 2)  # fail + sleep start
        await asyncio.sleep(0.5)  # a heartbeat publishes the busy job and the counters
        seen = json.loads(
            ruby(
                redis_url,
                """
            process = Sidekiq::ProcessSet.new.first
            work = Sidekiq::Workers.new.map { |pid, tid, w|
              [pid, w["queue"], w["payload"]["class"], w["payload"]["args"]] }
            stats = Sidekiq::Stats.new
            puts JSON.generate({"size" => Sidekiq::ProcessSet.new.size,
              "identity" => process["identity"], "concurrency" => process["concurrency"],
              "queues" => process["queues"], "tag" => process["tag"], "busy" => process["busy"],
              "quiet" => process["quiet"], "stopping" => process.stopping?,
              "rss" => process["rss"], "beat" => process["beat"], "work" => work,
              "processed" => stats.processed, "failed" => stats.failed,
              "workers_size" => stats.workers_size})
        """,
            )
        )
    assert seen["size"] == 1 and seen["identity"] == w.identity
    assert (seen["concurrency"], seen["queues"], seen["tag"]) == (7, ["default", "low"], "py")
    assert seen["busy"] == 1 and seen["workers_size"] == 1
    assert seen["quiet"] == "false" and seen["stopping"] is False
    assert seen["rss"] > 1000 and abs(seen["beat"] - time.time()) < 5
    assert seen["work"] == [[w.identity, "default", "sleep", [2, "slow"]]]
    assert (seen["processed"], seen["failed"]) == (2, 1)


async def test_ruby_api_quiets_and_stops_a_python_worker(redis_url: str) -> None:
    client = Client(redis_url)
    async with worker(redis_url) as w:
        ruby(redis_url, "Sidekiq::ProcessSet.new.first.quiet!")
        await eventually(lambda: w.manager.quieted.is_set())
        client.enqueue("default", "record", ["after quiet"])
        await asyncio.sleep(0.5)
        assert client.redis.llen("queue:default") == 1  # not taken
        stopping = ruby(redis_url, "puts Sidekiq::ProcessSet.new.first.stopping?")
        assert stopping.strip() == "true"
        ruby(redis_url, "Sidekiq::ProcessSet.new.first.stop!")
        await eventually(lambda: w.stopping.is_set())
    assert ruby(redis_url, "puts Sidekiq::ProcessSet.new.size").strip() == "0"


def test_shared_namespace_with_ruby_redis_namespace(redis_url: str) -> None:
    client = Client(redis_url, namespace="acme")
    with Sidekiq(redis_url, RUBY_JOBS, extra_env={"SIDEKIQ_NAMESPACE": "acme"}):
        client.enqueue("default", "RecordJob", ["namespaced"])
        assert results(redis_url, 1) == [["namespaced"]]
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    assert raw.smembers("acme:queues") == {"default"} and not raw.exists("queues")
    assert int(raw.get("acme:stat:processed") or 0) == 1


async def test_ruby_namespaced_push_runs_on_a_namespaced_python_worker(redis_url: str) -> None:
    async with worker(redis_url, namespace="acme", queues=["python"]) as w:
        ruby(redis_url, 'PyRecord.perform_async("from ruby")', namespace="acme")
        assert await asyncio.to_thread(results, redis_url, 1) == [["py", "from ruby"]]
        identity = w.identity
        await asyncio.sleep(0.3)
        size = ruby(
            redis_url, "puts Sidekiq::ProcessSet.new.map(&:identity).inspect", namespace="acme"
        )
    assert identity in size
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    assert raw.get("processes") is None and not raw.exists("queue:python")


async def test_ruby_and_python_pollers_share_the_retry_and_schedule_sets(redis_url: str) -> None:
    """Due entries written by either side reach their queue once, whoever polls."""
    client = Client(redis_url)
    with Sidekiq(redis_url, RUBY_JOBS):
        async with worker(redis_url, queues=["python"]):
            for i in range(20):
                client.enqueue_in("default", "RecordJob", 0.5, [i])
                client.enqueue_in("python", "record", 0.5, [i])
            ran = await asyncio.to_thread(results, redis_url, 40, 20)
            await asyncio.sleep(1)
            assert client.redis.llen("results") == 40  # each exactly once
    assert sorted(map(str, ran)) == sorted(map(str, [[i] for i in range(20)] * 2))


def test_backtrace_encoding_is_byte_for_byte_rubys(redis_url: str) -> None:
    lines = [f"/app/jobs/report.py:{i}:in `perform'" for i in range(30)]
    from_ruby = ruby(
        redis_url,
        f"""
        require "zlib"
        require "base64"
        print Base64.encode64(Zlib::Deflate.deflate(JSON.generate({json.dumps(lines)})))
    """,
    )
    assert compress_backtrace(lines) == from_ruby
