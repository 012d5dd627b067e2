"""slipway.jobs.api reads and steers what Ruby and Python workers share, like Sidekiq::API."""

from __future__ import annotations

import json
import time
from typing import Any

import slipway.jobs.api as api
from slipway.jobs import Client
from tests.jobs_support import RUBY_JOBS, eventually, ruby, worker
from tests.services import Sidekiq


def test_stats_and_queues(redis_url: str, client: Client, raw: Any) -> None:
    client.enqueue_bulk("default", "X", [[1], [2], [3]])
    client.enqueue("low", "X", [])
    client.enqueue_in("default", "X", 60, [])
    raw.set("stat:processed", 10)
    raw.set("stat:failed", 4)
    raw.zadd("retry", {"{}": time.time()})
    stats = api.Stats(redis_url)
    assert (stats.processed, stats.failed) == (10, 4)
    assert (stats.enqueued, stats.scheduled_size, stats.retry_size, stats.dead_size) == (4, 1, 1, 0)
    assert stats.queues == {"default": 3, "low": 1}
    assert [queue.name for queue in api.Queue.all(redis_url)] == ["default", "low"]
    default = api.Queue("default", redis_url)
    assert default.size == 3
    assert [job.args for job in default.jobs()] == [[3], [2], [1]]  # oldest last
    assert 0 <= default.latency < 5
    assert default.find_job(next(default.jobs()).jid or "") is not None
    default.clear()
    assert default.size == 0 and "default" not in raw.smembers("queues")


def test_latency_reads_sidekiq_8_millisecond_timestamps(redis_url: str, raw: Any) -> None:
    enqueued_ms = int((time.time() - 30) * 1000)
    raw.lpush("queue:ms", json.dumps({"class": "X", "args": [], "enqueued_at": enqueued_ms}))
    assert 29 < api.Queue("ms", redis_url).latency < 40


def test_sorted_sets_retry_delete_and_kill(redis_url: str, client: Client, raw: Any) -> None:
    jobs = [
        {
            "class": "X",
            "args": [i],
            "queue": "default",
            "jid": f"{i:024x}",
            "retry": True,
            "retry_count": 3,
            "error_class": "E",
        }
        for i in range(3)
    ]
    for job in jobs:
        raw.zadd("retry", {json.dumps(job): time.time() + 100})
    retries = api.RetrySet(redis_url)
    assert retries.size == 3 and {entry.jid for entry in retries} == {j["jid"] for j in jobs}
    entry = retries.find_job(f"{0:024x}")
    assert entry is not None and entry.klass == "X" and entry.at.timestamp() > time.time()
    entry.retry()
    [queued] = raw.lrange("queue:default", 0, -1)
    assert json.loads(queued)["retry_count"] == 2  # Web UI "Retry" gives one back
    assert "enqueued_at" in json.loads(queued)
    retries.find_job(f"{1:024x}").delete()  # type: ignore[union-attr]
    retries.find_job(f"{2:024x}").kill()  # type: ignore[union-attr]
    assert retries.size == 0
    dead = api.DeadSet(redis_url)
    assert [entry.args for entry in dead] == [[2]]
    dead.retry_all()
    assert dead.size == 0 and raw.llen("queue:default") == 2


def test_scheduled_set_add_to_queue(redis_url: str, client: Client, raw: Any) -> None:
    jid = client.enqueue_in("default", "X", 3600, ["later"])
    scheduled = api.ScheduledSet(redis_url)
    entry = scheduled.find_job(jid)
    assert entry is not None and entry.args == ["later"]
    entry.add_to_queue()
    assert scheduled.size == 0
    assert json.loads(raw.lrange("queue:default", 0, -1)[0])["jid"] == jid


async def test_processes_and_work_of_ruby_and_python_alike(redis_url: str, client: Client) -> None:
    client.enqueue("default", "sleep", [1.0, "seen"])
    async with worker(redis_url, tag="py") as w:
        # The work hash and the process hash are written one after the other: wait for both.
        await eventually(lambda: any(True for _ in api.WorkSet(redis_url)))
        await eventually(lambda: [p.busy for p in api.ProcessSet(redis_url)] == [1])
        [process] = list(api.ProcessSet(redis_url))
        assert process.identity == w.identity and process["tag"] == "py"
        assert process.busy == 1 and not process.stopping and process.rss > 0
        [work] = list(api.WorkSet(redis_url))
        assert work.identity == w.identity and work.job.args == [1.0, "seen"]
        process.quiet()
        await eventually(lambda: w.manager.quieted.is_set())
        process.stop()
        await eventually(lambda: w.stopping.is_set())


def test_process_set_prunes_processes_without_a_heartbeat(redis_url: str, raw: Any) -> None:
    raw.sadd("processes", "gone:1:abc")
    assert list(api.ProcessSet(redis_url)) == []
    assert raw.scard("processes") == 0


def test_a_ruby_process_is_listed_too(redis_url: str) -> None:
    with Sidekiq(redis_url, RUBY_JOBS):
        [process] = list(api.ProcessSet(redis_url))
    assert process["concurrency"] == 5 and process["queues"] == ["default"]


def test_backtraces_written_by_ruby_are_readable(redis_url: str, raw: Any) -> None:
    ruby(
        redis_url,
        """
        require "sidekiq/job_retry"
        class Failing
          include Sidekiq::Worker
          sidekiq_options backtrace: 3
          def perform; raise ArgumentError, "from ruby"; end
        end
        retrier = Sidekiq::JobRetry.new
        job = {"class" => "Failing", "args" => [], "queue" => "default", "retry" => true,
               "backtrace" => 3, "jid" => "c" * 24}
        begin
          retrier.local(Failing.new, JSON.generate(job), "default") { Failing.new.perform }
        rescue Sidekiq::JobRetry::Skip
        end
    """,
    )
    [entry] = list(api.RetrySet(redis_url))
    assert entry["error_class"] == "ArgumentError"
    assert entry.error_backtrace is not None and len(entry.error_backtrace) == 3
    assert "in `perform'" in entry.error_backtrace[0]
