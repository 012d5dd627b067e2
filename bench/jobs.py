"""slipway.jobs against Ruby Sidekiq 6.4.1, on one private Redis, in one run.

Prints no-op throughput (timed from the first job taken to the empty queue, as Sidekiq's
sidekiqload does), enqueue rates, enqueue-to-start latency, and the worker's RSS over 100,000
jobs, each with the ratio against Sidekiq.

    .venv/bin/python bench/jobs.py [--jobs 50000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import RedisServer, stop_process, wait_until  # noqa: E402

from slipway.jobs import Client  # noqa: E402

BENCH = ROOT / "bench"
SLIPWAYD = Path(sys.executable).parent / "slipwayd"
CHUNK = 10_000


def sidekiq_argv(log_level: str) -> tuple[list[str], dict[str, str]]:
    return (
        ["sidekiq", "-r", str(BENCH / "sidekiq_jobs.rb"), "-c", "10", "-q", "default"],
        {"SIDEKIQ_LOG_LEVEL": log_level},
    )


def slipway_argv(*extra: str) -> tuple[list[str], dict[str, str]]:
    return (
        [
            str(SLIPWAYD),
            "worker",
            "-r",
            str(BENCH / "python_jobs.py"),
            "-c",
            "10",
            "-q",
            "default",
            *extra,
        ],
        {},
    )


def start_worker(url: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "REDIS_URL": url, **env}
    return subprocess.Popen(
        argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_registered(raw: redis.Redis, process: subprocess.Popen[bytes]) -> None:
    marker = f":{process.pid}:".encode()
    wait_until(
        lambda: any(marker in m for m in raw.smembers("processes")),
        30,
        "worker registered",
        process,
    )


def throughput(
    url: str, argv: list[str], env: dict[str, str], jobs: int, job_class: str = "NoopJob"
) -> float:
    raw = redis.Redis.from_url(url)
    raw.flushall()
    client = Client(url)
    for start in range(0, jobs, CHUNK):
        client.enqueue_bulk("default", job_class, [[i] for i in range(start, start + CHUNK)])
    process = start_worker(url, argv, env)
    try:
        while raw.llen("queue:default") == jobs:
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}")
            time.sleep(0.001)
        first = time.perf_counter()
        while raw.llen("queue:default"):
            time.sleep(0.01)
        elapsed = time.perf_counter() - first
    finally:
        stop_process(process, timeout=30)
    return jobs / elapsed


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ruby_enqueue_rate(url: str, count: int, bulk: bool) -> float:
    script = f"""
        require "sidekiq"
        Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        if {"true" if bulk else "false"}
          ({count} / 1000).times {{ |b| Sidekiq::Client.push_bulk("class" => "NoopJob",
              "args" => (0...1000).map {{ |i| [b * 1000 + i] }}) }}
        else
          {count}.times {{ |i| Sidekiq::Client.push("class" => "NoopJob", "args" => [i]) }}
        end
        puts Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
    """
    result = subprocess.run(
        ["ruby", "-e", script],
        env={**os.environ, "REDIS_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    return count / float(result.stdout.strip())


def python_enqueue_rate(url: str, count: int, bulk: bool) -> float:
    client = Client(url)
    if bulk:
        elapsed = timed(
            lambda: [
                client.enqueue_bulk("default", "NoopJob", [[b * 1000 + i] for i in range(1000)])
                for b in range(count // 1000)
            ]
        )
    else:
        elapsed = timed(lambda: [client.enqueue("default", "NoopJob", [i]) for i in range(count)])
    return count / elapsed


def latencies(url: str, argv: list[str], env: dict[str, str], count: int) -> list[float]:
    """Enqueue one job every 10 ms into an idle worker; each records its wait."""
    raw = redis.Redis.from_url(url)
    raw.flushall()
    client = Client(url)
    process = start_worker(url, argv, env)
    try:
        wait_registered(raw, process)
        time.sleep(0.5)
        for _ in range(count):
            client.enqueue("default", "LatencyJob", [time.time()])
            time.sleep(0.01)
        wait_until(lambda: raw.llen("latencies") >= count, 30, "latencies")
    finally:
        stop_process(process, timeout=30)
    return [float(value) * 1000 for value in raw.lrange("latencies", 0, -1)]


def rss_growth(url: str, jobs: int) -> tuple[float, float]:
    """The worker's RSS (MB) after 10 % of ``jobs`` and after all of them."""
    raw = redis.Redis.from_url(url)
    raw.flushall()
    client = Client(url)
    argv, env = slipway_argv("--log-level", "warning")
    process = start_worker(url, argv, env)
    try:
        wait_registered(raw, process)
        worker = psutil.Process(process.pid)
        samples = []
        for portion in (jobs // 10, jobs - jobs // 10):
            for start in range(0, portion, CHUNK):
                client.enqueue_bulk(
                    "default", "NoopJob", [[i] for i in range(start, min(portion, start + CHUNK))]
                )
            wait_until(lambda: raw.llen("queue:default") == 0, 120, "queue drained")
            time.sleep(0.5)
            samples.append(worker.memory_info().rss / 2**20)
    finally:
        stop_process(process, timeout=30)
    return samples[0], samples[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--only", choices=["throughput", "enqueue", "latency", "rss"])
    options = parser.parse_args()
    jobs = options.jobs

    with RedisServer() as server:
        url = server.url
        print(
            f"redis-server {redis.Redis.from_url(url).info()['redis_version']} on a free "
            f"port, {os.cpu_count()} CPUs, {jobs} no-op jobs per run, concurrency 10"
        )

        if options.only in (None, "throughput"):
            print("\n== No-op throughput (jobs/s, first job taken -> empty queue)")
            for label, log_level, py_log in (
                ("job logs on (default)", "info", "info"),
                ("job logs off (as sidekiqload)", "error", "warning"),
            ):
                ruby = throughput(url, *sidekiq_argv(log_level), jobs)
                ours = throughput(url, *slipway_argv("--log-level", py_log), jobs)
                reliable = throughput(url, *slipway_argv("--log-level", py_log, "--reliable"), jobs)
                async_ours = throughput(
                    url, *slipway_argv("--log-level", py_log), jobs, "AsyncNoopJob"
                )
                print(f"{label}:")
                print(f"  Ruby Sidekiq 6.4.1 -c 10       {ruby:9,.0f}")
                print(f"  slipway.jobs (sync job)        {ours:9,.0f}   {ours / ruby:5.2f}x")
                print(
                    f"  slipway.jobs --reliable (sync) {reliable:9,.0f}   {reliable / ruby:5.2f}x"
                )
                print(
                    f"  slipway.jobs (async job)       {async_ours:9,.0f}   "
                    f"{async_ours / ruby:5.2f}x"
                )

        if options.only in (None, "enqueue"):
            print("\n== Enqueue rate (jobs/s, from one process)")
            for bulk, count in ((False, 10_000), (True, 100_000)):
                redis.Redis.from_url(url).flushall()
                ruby = ruby_enqueue_rate(url, count, bulk)
                redis.Redis.from_url(url).flushall()
                ours = python_enqueue_rate(url, count, bulk)
                label = "bulk of 1,000" if bulk else "one at a time"
                print(
                    f"  {label:<14} Ruby push{'_bulk' if bulk else ''} {ruby:9,.0f}   "
                    f"slipway {ours:9,.0f}   {ours / ruby:5.2f}x"
                )

        if options.only in (None, "latency"):
            print("\n== Enqueue-to-start latency at low load (ms, 300 jobs, one per 10 ms)")
            for label, (argv, env) in (
                ("Ruby Sidekiq", sidekiq_argv("info")),
                ("slipway.jobs", slipway_argv()),
                ("slipway.jobs --reliable", slipway_argv("--reliable")),
            ):
                values = latencies(url, argv, env, 300)
                print(
                    f"  {label:<24} p50 {statistics.median(values):6.2f}   "
                    f"p99 {percentile(values, 0.99):6.2f}"
                )

        if options.only in (None, "rss"):
            print("\n== slipway.jobs worker RSS over 100,000 no-op jobs (MB)")
            after_10k, after_100k = rss_growth(url, 100_000)
            print(
                f"  after 10,000: {after_10k:.1f}   after 100,000: {after_100k:.1f}   "
                f"growth {after_100k - after_10k:+.1f}"
            )


if __name__ == "__main__":
    main()
