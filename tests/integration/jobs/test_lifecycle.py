"""Worker processes under signals, crashes and Redis outages."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from slipway.jobs import Client
from tests.jobs_support import HERE, WorkerProcess, results
from tests.services import RedisServer, exited, wait_until

RELIABLE = ["--reliable", "--heartbeat-ttl", "1", "--recovery-interval", "0.3"]


def test_tstp_quiets_and_term_stops(redis_url: str, client: Client) -> None:
    with WorkerProcess(redis_url) as worker:
        raw = redis.Redis.from_url(redis_url, decode_responses=True)
        [identity] = raw.smembers("processes")
        worker.signal(signal.SIGTSTP)
        wait_until(lambda: raw.hget(identity, "quiet") == "true", 5, "quiet")
        client.enqueue("default", "record", ["while quiet"])
        time.sleep(0.6)
        assert raw.llen("queue:default") == 1 and not worker.exited
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0
        assert raw.llen("queue:default") == 1  # still there for the next worker
        assert raw.smembers("processes") == set()


def test_term_lets_busy_jobs_finish_within_the_timeout(redis_url: str, client: Client) -> None:
    client.enqueue("default", "sleep", [1.0, "finishing"])
    with WorkerProcess(redis_url, "-t", "10") as worker:
        results(redis_url, 1)  # started
        stopped_at = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        assert time.monotonic() - stopped_at < 5
    assert results(redis_url, 2)[-1] == ["end", "finishing"]
    assert client.redis.llen("queue:default") == 0


@pytest.mark.parametrize("reliable", [False, True])
def test_a_job_hanging_past_the_timeout_is_pushed_back(
    redis_url: str, client: Client, reliable: bool
) -> None:
    jid = client.enqueue("default", "hang", [])
    extra = ["--reliable"] if reliable else []
    with WorkerProcess(redis_url, "-t", "1", *extra) as worker:
        results(redis_url, 1)
        stopped_at = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        assert time.monotonic() - stopped_at < 6  # 1 s timeout, then requeue and exit
    [requeued] = redis.Redis.from_url(redis_url).lrange("queue:default", 0, -1)
    assert json.loads(requeued)["jid"] == jid
    raw = redis.Redis.from_url(redis_url)
    assert raw.keys("reliable:*:queue:*") == []  # nothing left in a working list


def test_sigkill_mid_job_is_recovered_by_another_worker(redis_url: str, client: Client) -> None:
    client.enqueue("default", "sleep", [2.0, "survivor"])
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    with WorkerProcess(redis_url, *RELIABLE) as first:
        assert results(redis_url, 1) == [["start", "survivor"]]
        first.signal(signal.SIGKILL)
        first.wait()
    assert raw.llen("queue:default") == 0  # the job sits in the dead worker's working list
    with WorkerProcess(redis_url, *RELIABLE):
        ran = results(redis_url, 3, timeout=20)
    assert ran == [["start", "survivor"], ["start", "survivor"], ["end", "survivor"]]
    assert raw.keys("reliable:*:queue:*") == []


def test_a_running_worker_recovers_jobs_of_one_killed_later(redis_url: str, client: Client) -> None:
    with (
        WorkerProcess(redis_url, *RELIABLE, "-q", "other"),
        WorkerProcess(redis_url, *RELIABLE, "-q", "default") as victim,
    ):
        client.enqueue("default", "sleep", [1.0, "moved"])
        results(redis_url, 1)
        victim.signal(signal.SIGKILL)
        victim.wait()
        # The survivor only listens to "other": recovery puts the job back in "default".
        wait_until(lambda: client.redis.llen("queue:default") == 1, 15, "recovered")
    job = json.loads(redis.Redis.from_url(redis_url).lrange("queue:default", 0, -1)[0])
    assert job["interrupted_count"] == 1


def test_a_job_that_keeps_killing_workers_ends_in_the_dead_set(
    redis_url: str, client: Client
) -> None:
    jid = client.enqueue("default", "kill_my_worker", [])
    raw: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    runs = 0
    while not raw.zcard("dead") and runs < 8:
        worker = WorkerProcess(redis_url, *RELIABLE)
        worker.start()

        def died_or_buried(w: WorkerProcess = worker) -> bool:
            return w.exited or raw.zcard("dead") > 0

        wait_until(died_or_buried, 20, "the worker died or buried the job")
        if worker.exited:
            runs += 1
        worker.stop()
    # Three re-runs after the first crash, then the dead set instead of a fifth run.
    assert runs == 4
    [dead] = raw.zrange("dead", 0, -1)
    dead_job = json.loads(dead)
    assert dead_job["jid"] == jid and dead_job["interrupted_count"] == 4
    assert dead_job["error_class"] == "Interrupted"
    assert raw.llen("queue:default") == 0


@pytest.mark.parametrize("reliable", [True, False])
def test_redis_restarting_mid_run(reliable: bool, tmp_path: Path) -> None:
    """The worker reconnects by itself; with reliable fetch no job is lost."""
    lines = tmp_path / "ran.txt"
    with RedisServer(persist=True) as server:
        client = Client(server.url)
        client.enqueue_bulk(
            "default", "append_line", [[str(lines), f"job-{i}", 0.01] for i in range(300)]
        )
        extra = ["--reliable"] if reliable else []
        with WorkerProcess(server.url, "-c", "5", *extra) as worker:
            wait_until(
                lambda: lines.exists() and len(lines.read_text().split()) >= 30, 20, "some jobs ran"
            )
            server.restart()
            client = Client(server.url)
            if reliable:
                wait_until(lambda: len(set(lines.read_text().split())) == 300, 60, "every job ran")
            else:
                wait_until(lambda: client.redis.llen("queue:default") == 0, 60, "queue empty")
            assert not worker.exited
            time.sleep(0.5)
            output = worker.output()
        assert "Redis is back" in output or "error" in output.lower()
    ran = Counter(lines.read_text().split())
    if reliable:
        assert set(ran) == {f"job-{i}" for i in range(300)}
    else:
        assert len(ran) >= 290  # basic fetch may lose the jobs in flight, as Sidekiq's


def test_periodic_jobs_run_once_per_tick_whatever_the_number_of_workers(redis_url: str) -> None:
    periodic = ["-r", str(HERE / "periodic_jobs.py")]
    with WorkerProcess(redis_url, *periodic), WorkerProcess(redis_url, *periodic):
        time.sleep(4.5)
    seconds = [
        json.loads(item) for item in redis.Redis.from_url(redis_url).lrange("results", 0, -1)
    ]
    assert len(seconds) >= 3
    assert len(seconds) == len(set(seconds))  # never twice for the same tick
    assert max(seconds) - min(seconds) == len(seconds) - 1  # and no tick missed


@pytest.mark.parametrize("reliable", [False, True])
def test_hup_hands_the_work_to_a_new_process_and_loses_no_job(
    redis_url: str, client: Client, reliable: bool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "worker.pid"
    extra = ["--reliable"] if reliable else []
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    with WorkerProcess(redis_url, "--pid-file", str(pid_file), "-t", "20", *extra) as worker:
        old = worker.pid
        client.enqueue("default", "sleep", [2.0, "busy during the upgrade"])
        results(redis_url, 1)  # it started in the old process
        worker.signal(signal.SIGHUP)
        wait_until(lambda: int(pid_file.read_text()) != old, 20, "the new worker is ready")
        new = int(pid_file.read_text())
        try:
            assert any(f":{new}:" in member for member in raw.smembers("processes"))
            for number in range(50):  # while the old one drains
                client.enqueue("default", "record_pid", [f"job {number}"])
            assert worker.wait(20) == 0  # once its busy job is done
            assert not any(f":{old}:" in member for member in raw.smembers("processes"))
            for number in range(50, 60):
                client.enqueue("default", "record_pid", [f"job {number}"])
            entries = results(redis_url, 62)
            assert ["end", "busy during the upgrade"] in entries
            ran = Counter(entry[0] for entry in entries if entry[0].startswith("job "))
            assert sorted(ran) == sorted(f"job {n}" for n in range(60))
            assert set(ran.values()) == {1}
            assert {pid for label, pid in entries[-10:]} == {new}
        finally:
            os.kill(new, signal.SIGTERM)
            wait_until(partial(exited, new), 30, "the new worker exits")
