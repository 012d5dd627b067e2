"""Python side of bench/jobs.py: the same job names as bench/sidekiq_jobs.rb."""

from __future__ import annotations

import time
from typing import Any

from slipway import jobs
from slipway.jobs.registry import default_client


@jobs.job(name="NoopJob")
def noop(*args: Any) -> None:
    pass


@jobs.job(name="AsyncNoopJob")
async def async_noop(*args: Any) -> None:
    pass


@jobs.job(name="LatencyJob")
def latency(enqueued: float) -> None:
    default_client().redis.rpush("latencies", repr(time.time() - enqueued))
