"""Running Ruby Sidekiq code and slipway.jobs workers (in-process or as processes) in tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis

from slipway.jobs.launcher import Launcher, WorkerConfig
from tests.services import stop_process, wait_until

HERE = Path(__file__).parent
RUBY_JOBS = HERE / "ruby" / "jobs.rb"
SAMPLE_JOBS = HERE / "sample_jobs.py"

# Fast timings for tests; everything else keeps Sidekiq's defaults.
FAST = {"heartbeat_interval": 0.2, "poll_interval_average": 0.2, "initial_poll_wait": 0.0}


def ruby(redis_url: str, script: str, namespace: str | None = None) -> str:
    """Run Ruby code with Sidekiq loaded and configured for ``redis_url``; its stdout."""
    env = {**os.environ, "REDIS_URL": redis_url, "SIDEKIQ_NAMESPACE": namespace or ""}
    result = subprocess.run(
        ["ruby", "-r", str(RUBY_JOBS), "-e", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def results(redis_url: str, count: int, timeout: float = 15) -> list[Any]:
    """Wait for ``count`` entries in the ``results`` list, and return them decoded."""
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(lambda: client.llen("results") >= count, timeout, f"{count} results")
        return [json.loads(item) for item in client.lrange("results", 0, -1)]
    finally:
        client.close()


@asynccontextmanager
async def worker(redis_url: str, **options: Any) -> AsyncIterator[Launcher]:
    """A worker running in this event loop; stopped gracefully on exit."""
    import tests.sample_jobs  # noqa: F401  (registers the sample jobs)

    launcher = Launcher(WorkerConfig(redis_url=redis_url, **{**FAST, **options}))
    task = asyncio.create_task(launcher.run())
    try:
        await asyncio.wait_for(launcher.ready.wait(), timeout=10)
        yield launcher
    finally:
        launcher.request_stop()
        await asyncio.wait_for(task, timeout=launcher.config.timeout + 10)


async def eventually(check: Callable[[], Any], within: float = 10) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {within} s: {check}")
        await asyncio.sleep(0.02)


class WorkerProcess:
    """``slipwayd worker`` as a real process, for signals, SIGKILL and the CLI itself."""

    def __init__(self, redis_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.args = [
            "-r",
            str(SAMPLE_JOBS),
            "--redis-url",
            redis_url,
            "--heartbeat-interval",
            "0.2",
            "--poll-interval",
            "0.2",
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix="slipway-worker-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, namespace: str | None = None) -> WorkerProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from slipway.daemon import app; app()",
                    "worker",
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        key = f"{namespace}:processes" if namespace else "processes"
        marker = f":{self.process.pid}:"
        wait_until(
            lambda: any(marker in m for m in client.smembers(key)),
            20,
            f"worker registered (log: {self.output()})",
            self.process,
        )
        client.close()
        return self

    @property
    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTTIN)  # the worker logs where it is stuck
            time.sleep(1)
            raise AssertionError(f"the worker did not exit; its log:\n{self.output()}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=40)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)
