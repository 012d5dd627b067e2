"""TERM and INT stop a worker process within ``-t`` plus a few seconds, whatever Redis does:
never reachable, gone while a job runs, or accepting connections but never answering."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from slipway.daemon.worker import EXIT_MARGIN
from slipway.host.ports import free_port
from slipway.jobs import Client
from slipway.jobs.launcher import CLOSE_TIMEOUT, SHUTDOWN_GRACE
from tests.jobs_support import WorkerProcess, results
from tests.services import RedisServer, stop_process, wait_until

TIMEOUT = 1  # -t
LIMIT = TIMEOUT + 3  # -t, then SHUTDOWN_GRACE for Redis, CLOSE_TIMEOUT, the exit itself
WATCHDOG = TIMEOUT + SHUTDOWN_GRACE + CLOSE_TIMEOUT + EXIT_MARGIN
STUBBORN_JOBS = Path(__file__).with_name("stubborn_jobs.py")

signals = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])


def signals_and_fetches(*pairs: tuple[signal.Signals, str]) -> pytest.MarkDecorator:
    """Each signal once, each with a fetch: every pair across two tests, not in each."""
    ids = [f"{signum.name[3:]}-{fetch.removeprefix('--')}" for signum, fetch in pairs]
    return pytest.mark.parametrize(("signum", "fetch"), pairs, ids=ids)


@contextmanager
def unregistered_worker(redis_url: str) -> Iterator[WorkerProcess]:
    """A worker process, not waiting for Redis to see it: it may never."""
    worker = WorkerProcess(redis_url, "-t", str(TIMEOUT))
    with worker.log.open("ab") as log:
        worker.process = subprocess.Popen(
            [sys.executable, "-c", "from slipway.daemon import app; app()", "worker", *worker.args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: " starting: " in worker.output(), 20, "worker started", worker.process)
        yield worker
    finally:
        worker.stop()
        worker.log.unlink(missing_ok=True)


def stop(worker: WorkerProcess, signum: int, status: int = 0) -> str:
    """Send ``signum``; check that the worker exits in time with ``status``. Its last line."""
    sent = time.monotonic()
    worker.signal(signum)
    code = worker.wait(LIMIT + 10)
    elapsed = time.monotonic() - sent
    output = worker.output()
    assert elapsed < LIMIT, f"exited after {elapsed:.1f} s; its log:\n{output}"
    assert code == status, output
    return output.splitlines()[-1]


@signals
def test_redis_never_reachable(signum: int) -> None:
    with unregistered_worker(f"redis://127.0.0.1:{free_port()}/0") as worker:  # nothing there
        wait_until(lambda: "cannot reach Redis" in worker.output(), 10, "a failed attempt")
        last = stop(worker, signum)
    assert "stopped; Redis was never reached (ConnectionError: " in last


@signals
def test_redis_accepting_connections_but_never_answering(signum: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody reads
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with unregistered_worker(url) as worker:
            last = stop(worker, signum)
    assert "stopped; Redis was never reached (it did not answer)" in last


@signals_and_fetches((signal.SIGTERM, "--no-reliable"), (signal.SIGINT, "--reliable"))
def test_redis_going_away_while_a_job_runs(signum: int, fetch: str) -> None:
    with RedisServer() as server:
        Client(server.url).enqueue("default", "sleep", [60, "long"])
        with WorkerProcess(server.url, "-t", str(TIMEOUT), fetch) as worker:
            results(server.url, 1)
            assert server.process is not None
            stop_process(server.process)  # connections are now refused
            last = stop(worker, signum)
            output = worker.output()
    assert "could not push 1 jobs back" in output
    assert "stopped; clearing the heartbeat in Redis failed: ConnectionError: " in last


@signals_and_fetches((signal.SIGTERM, "--reliable"), (signal.SIGINT, "--no-reliable"))
def test_redis_paused_while_a_job_runs(signum: int, fetch: str) -> None:
    with RedisServer() as server:
        Client(server.url).enqueue("default", "sleep", [60, "long"])
        with WorkerProcess(server.url, "-t", str(TIMEOUT), fetch) as worker:
            results(server.url, 1)
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # connections accepted, never answered
            try:
                last = stop(worker, signum)
            finally:
                server.process.send_signal(signal.SIGCONT)
    gave_up = f"gave up pushing unfinished jobs back to Redis {SHUTDOWN_GRACE:g} s after"
    assert last.endswith(f"stopped; {gave_up} the timeout")


def test_a_job_ignoring_cancellation_cannot_hold_the_process(redis_url: str) -> None:
    """The last resort: past the promised time the process exits anyway, with status 1."""
    Client(redis_url).enqueue("default", "IgnoreCancellation", [])
    with WorkerProcess(redis_url, "-r", str(STUBBORN_JOBS), "-t", str(TIMEOUT)) as worker:
        results(redis_url, 1)
        last = stop(worker, signal.SIGTERM, status=1)
        output = worker.output()
    assert f"gave up waiting for interrupted jobs to end {SHUTDOWN_GRACE:g} s after" in output
    assert last.endswith(f"did not stop within {WATCHDOG:.1f} s; exiting now")
    raw = redis.Redis.from_url(redis_url)
    assert raw.llen("queue:default") == 1  # pushed back before the wait: not lost
