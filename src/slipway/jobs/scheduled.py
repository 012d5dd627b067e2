"""Moves due jobs from the ``retry`` and ``schedule`` sets to their queues (``scheduled.rb``).

The pop is Sidekiq's own Lua script, one job at a time, so Ruby and Python pollers can share
the sets. The wait between polls follows Sidekiq's formula, scaled by the number of processes
so that a cluster polls about once every ``average_scheduled_poll_interval`` seconds in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from slipway.jobs.client import stage_push
from slipway.jobs.keys import Keys
from slipway.jobs.payload import loads, now
from slipway.jobs.retry import stage_kill

log = logging.getLogger("slipway.jobs")

ZPOPBYSCORE = """
local key, now = KEYS[1], ARGV[1]
local jobs = redis.call("zrangebyscore", key, "-inf", now, "limit", 0, 1)
if jobs[1] then
  redis.call("zrem", key, jobs[1])
  return jobs[1]
end
"""

INITIAL_WAIT = 10.0
AVERAGE_SCHEDULED_POLL_INTERVAL = 5.0


def random_poll_interval(average: float, process_count: int) -> float:
    """Sidekiq's sleep: ±50 % around the average below 10 processes, else 0..average."""
    if process_count < 10:
        return average * random.random() + average / 2
    return average * random.random()


class Poller:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        poll_interval_average: float | None = None,
        average_scheduled_poll_interval: float = AVERAGE_SCHEDULED_POLL_INTERVAL,
        initial_wait: float | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.poll_interval_average = poll_interval_average
        self.average_scheduled_poll_interval = average_scheduled_poll_interval
        self.initial_wait = initial_wait
        self.done = asyncio.Event()
        self._zpopbyscore = redis.register_script(ZPOPBYSCORE)

    async def enqueue_jobs(self) -> int:
        """Push every due job of ``retry`` then ``schedule`` to its queue; returns how many."""
        moved = 0
        for sorted_set in (self.keys.retry, self.keys.schedule):
            while not self.done.is_set():
                raw = await self._zpopbyscore(keys=[sorted_set], args=[repr(now())])
                if raw is None:
                    break
                pipe = self.redis.pipeline(transaction=True)
                try:
                    job = loads(raw)
                    if not isinstance(job, dict) or not isinstance(job.get("queue"), str):
                        raise ValueError("not a job object with a queue")
                except ValueError as error:
                    log.error("unparseable job in %s sent to the dead set: %s", sorted_set, error)
                    stage_kill(pipe, self.keys, raw)
                else:
                    stage_push(pipe, self.keys, [job])
                await pipe.execute()
                moved += 1
        return moved

    async def _process_count(self) -> int:
        return max(1, int(await self.redis.scard(self.keys.processes)))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout=seconds)

    async def run(self) -> None:
        initial = self.initial_wait
        if initial is None:
            initial = (0 if self.poll_interval_average else INITIAL_WAIT) + 5 * random.random()
        await self._sleep(initial)
        while not self.done.is_set():
            try:
                await self.enqueue_jobs()
                count = await self._process_count()
                average = self.poll_interval_average or count * self.average_scheduled_poll_interval
                pause = random_poll_interval(average, count)
            except Exception as error:
                log.error("scheduled poller: %s", error)
                pause = 5.0
            await self._sleep(pause)

    def terminate(self) -> None:
        self.done.set()
