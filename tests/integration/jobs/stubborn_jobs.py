"""A job no cancellation stops, for ``slipwayd worker -r`` in the shutdown tests."""

from __future__ import annotations

import asyncio
import contextlib
import json

from slipway.jobs.registry import default_client, job


@job(name="IgnoreCancellation")
async def ignore_cancellation() -> None:
    """Swallows every cancellation, as careless ``except BaseException`` code does."""
    default_client().redis.rpush("results", json.dumps(["ignoring cancellation"]))
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
