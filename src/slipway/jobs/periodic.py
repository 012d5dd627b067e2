"""Periodic jobs: cron syntax in a time zone, each tick enqueued exactly once in a cluster.

Every worker computes the same ticks; at each one, a Lua script claims the tick
(``SET periodic:NAME:EPOCH NX``) and pushes the job in the same atomic step, so however many
workers run, one enqueues it and a crash can never claim without enqueuing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from slipway.jobs.client import build_job
from slipway.jobs.keys import Keys
from slipway.jobs.payload import check_args, dumps, now
from slipway.jobs.registry import JobFunction

log = logging.getLogger("slipway.jobs")

CLAIM_AND_PUSH = """
if not redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('sadd', KEYS[2], ARGV[2])
redis.call('lpush', KEYS[3], ARGV[3])
return 1
"""

MIN_CLAIM_TTL = 60
MAX_CLAIM_TTL = 24 * 3600


@dataclass
class Periodic:
    name: str
    cron: str
    job: JobFunction
    tz: ZoneInfo
    args: list[Any] = field(default_factory=list)

    def next_tick(self, after: float) -> float:
        start = datetime.fromtimestamp(after, self.tz)
        tick: datetime = croniter(self.cron, start).get_next(datetime)
        return tick.timestamp()


_periodic: dict[str, Periodic] = {}


def periodic(
    cron: str, *, tz: str = "UTC", args: list[Any] | tuple[Any, ...] = (), name: str | None = None
) -> Callable[[JobFunction], JobFunction]:
    """Enqueue the decorated ``@job`` on a cron schedule, e.g. ``@periodic("*/5 * * * *")``.

    ``tz`` is an IANA zone name; ticks follow its wall clock, daylight saving included.
    """
    if not croniter.is_valid(cron):
        raise ValueError(f"invalid cron expression: {cron!r}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone: {tz!r}") from error
    checked_args = check_args(args)

    def register(job: JobFunction) -> JobFunction:
        if not isinstance(job, JobFunction):
            raise TypeError("@periodic goes above @job")
        entry_name = name or job.name
        if entry_name in _periodic:
            raise ValueError(f"a periodic job named {entry_name!r} is already declared")
        _periodic[entry_name] = Periodic(entry_name, cron, job, zone, checked_args)
        return job

    return register


def declared() -> list[Periodic]:
    return list(_periodic.values())


class PeriodicScheduler:
    """Enqueues each declared periodic job at its ticks, claiming each tick once."""

    def __init__(self, redis: Any, keys: Keys, entries: list[Periodic]) -> None:
        self.redis = redis
        self.keys = keys
        self.entries = entries
        self.done = asyncio.Event()
        self._claim_and_push = redis.register_script(CLAIM_AND_PUSH)

    async def fire(self, entry: Periodic, tick: float) -> bool:
        """Enqueue ``entry`` for ``tick`` unless another worker already did."""
        period = entry.next_tick(tick) - tick
        ttl = int(min(MAX_CLAIM_TTL, max(MIN_CLAIM_TTL, 2 * period)))
        job = build_job(
            entry.job.queue,
            entry.job.name,
            entry.args,
            {"retry": entry.job.retry, **entry.job.options},
        )
        job["enqueued_at"] = now()
        claimed = await self._claim_and_push(
            keys=[
                self.keys.periodic_tick(entry.name, int(tick)),
                self.keys.queues,
                self.keys.queue(entry.job.queue),
            ],
            args=[ttl, entry.job.queue, dumps(job)],
        )
        return bool(claimed)

    async def run(self) -> None:
        if not self.entries:
            return
        upcoming = {entry.name: entry.next_tick(now()) for entry in self.entries}
        while not self.done.is_set():
            entry = min(self.entries, key=lambda e: upcoming[e.name])
            tick = upcoming[entry.name]
            try:
                await asyncio.wait_for(self.done.wait(), timeout=max(0.0, tick - now()))
                return
            except TimeoutError:
                pass
            try:
                if await self.fire(entry, tick):
                    log.info(
                        "enqueued periodic job %s for %s",
                        entry.name,
                        datetime.fromtimestamp(tick, entry.tz).isoformat(),
                    )
            except Exception as error:
                log.error("periodic job %s: %s; tick skipped", entry.name, error)
            upcoming[entry.name] = entry.next_tick(tick)

    def terminate(self) -> None:
        self.done.set()
