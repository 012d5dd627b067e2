"""Python jobs the worker tests run (loaded in-process, or with ``slipwayd worker -r``).

Each records what it saw at the end of the Redis list ``results`` (never namespaced), as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import slipway.jobs as jobs
from slipway.jobs.registry import default_client

exhausted: list[tuple[str, str]] = []


def _record(*values: Any) -> None:
    client = default_client().redis
    client.rpush("results", json.dumps(list(values), ensure_ascii=False))


@jobs.job()
def record(*args: Any) -> None:
    _record(*args)


@jobs.job(name="AsyncRecord")
async def async_record(*args: Any) -> None:
    _record("async", *args)


@jobs.job(name="PyRecord", queue="python")
def py_record(*args: Any) -> None:
    _record("py", *args)


@jobs.job()
def noop(*args: Any) -> None:
    pass


@jobs.job(name="AsyncNoop")
async def async_noop(*args: Any) -> None:
    pass


@jobs.job()
def fail(message: str = "boom") -> None:
    _record("fail", message)
    raise ValueError(message)


@jobs.job(retry=False)
def fail_without_retry() -> None:
    raise ValueError("no retry for me")


@jobs.job(retry=3, retry_in=lambda count, error: 1000 * (count + 1))
def fail_with_custom_delay() -> None:
    raise ValueError("custom delay")


@jobs.job(retry_in=lambda count, error: jobs.DISCARD)
def fail_and_discard() -> None:
    raise ValueError("discard me")


@jobs.job(retry_in=lambda count, error: jobs.KILL)
def fail_and_kill() -> None:
    raise ValueError("kill me")


@jobs.job(retry=0, retries_exhausted=lambda job, error: exhausted.append((job["jid"], str(error))))
def fail_exhausted() -> None:
    raise RuntimeError("exhausted")


@jobs.job()
def sleep(seconds: float, label: str = "") -> None:
    _record("start", label)
    time.sleep(seconds)
    _record("end", label)


@jobs.job(name="AsyncSleep")
async def async_sleep(seconds: float, label: str = "") -> None:
    _record("start", label)
    await asyncio.sleep(seconds)
    _record("end", label)


@jobs.job()
def hang() -> None:
    _record("hang", os.getpid())
    time.sleep(3600)


@jobs.job()
def kill_my_worker() -> None:
    """A poison job: the worker running it dies at once, without any cleanup."""
    _record("killed", os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


@jobs.job()
def record_pid(label: str) -> None:
    _record(label, os.getpid())


@jobs.job()
def append_line(path: str, label: str, seconds: float = 0.0) -> None:
    """Records outside Redis, so that it works while Redis is down."""
    time.sleep(seconds)
    with open(path, "a") as file:
        file.write(f"{label}\n")
