"""Taking jobs from Redis: Sidekiq's BasicFetch, and ReliableFetch (at-least-once).

Both honour Sidekiq's queue order: strict (the configured order) or weighted (a queue listed
``weight`` times, shuffled then deduplicated on every fetch). When jobs are waiting, one Lua
call takes as many as there are free slots, in that order; when the queues are empty, the
fetch blocks in Redis (BRPOP for BasicFetch, as Sidekiq does, with its 2 s timeout).

ReliableFetch moves each job atomically into a private working list per process and queue
(Sidekiq Pro's super_fetch idea) and removes it only once the job has finished, so a worker
killed mid-job loses nothing: another worker finds the list of the dead process (no heartbeat
any more) and pushes its jobs back, counting ``interrupted_count`` and sending a job that keeps
killing its workers to the dead set after ``max_interruptions``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from slipway.jobs.keys import Keys
from slipway.jobs.payload import dumps, loads, now
from slipway.jobs.retry import DEAD_MAX_JOBS, DEAD_TIMEOUT, error_message

log = logging.getLogger("slipway.jobs")

FETCH_TIMEOUT = 2  # seconds a blocking fetch waits, so shutdown is noticed (Sidekiq's TIMEOUT)
# With several queues, a reliable fetch can block on one queue only (BLMOVE); the others are
# looked at again after this long.
RELIABLE_MULTI_QUEUE_WAIT = 0.2
MAX_INTERRUPTIONS = 3

# Take up to ARGV[1] jobs from the ARGV[2] queues KEYS[1..n], queue after queue; when working
# lists follow (KEYS[n + i] for queue i), move each job into its list. Returns the flat list
# {queue index, job, ...}.
TAKE_BATCH = """
local limit = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
for i = 1, n do
  if limit <= 0 then break end
  local jobs = redis.call('rpop', KEYS[i], limit)
  if jobs then
    if #KEYS > n then redis.call('lpush', KEYS[n + i], unpack(jobs)) end
    for _, job in ipairs(jobs) do
      out[#out + 1] = i
      out[#out + 1] = job
    end
    limit = limit - #jobs
  end
end
return out
"""

# Take ARGV[1] out of the working list KEYS[1]; if it was there, put ARGV[2] back at the
# front of the queue KEYS[2] (ARGV[3] = "queue"), or in the dead set KEYS[3], trimmed.
MOVE_BACK = """
if redis.call('lrem', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if ARGV[3] == 'queue' then
  redis.call('rpush', KEYS[2], ARGV[2])
else
  local at = tonumber(ARGV[4])
  redis.call('zadd', KEYS[3], ARGV[4], ARGV[2])
  redis.call('zremrangebyscore', KEYS[3], '-inf', at - tonumber(ARGV[5]))
  redis.call('zremrangebyrank', KEYS[3], 0, -tonumber(ARGV[6]))
end
return 1
"""


@dataclass(slots=True)
class UnitOfWork:
    """One fetched job: its queue name and its exact bytes (requeue and LREM need them)."""

    queue: str
    raw: str


def queue_order(queues: list[str], strict: bool) -> list[str]:
    """The order to look at queues in for one fetch, as ``BasicFetch#queues_cmd``."""
    if strict:
        return list(dict.fromkeys(queues))
    shuffled = random.sample(queues, len(queues))
    return list(dict.fromkeys(shuffled))


class BasicFetch:
    """Sidekiq's fetch: a job is removed from Redis when taken (at-most-once on a crash)."""

    reliable = False

    def __init__(
        self, redis: Any, keys: Keys, queues: list[str], strict: bool, identity: str
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.queues = queues
        self.strict = strict
        self.identity = identity
        self._take_batch = redis.register_script(TAKE_BATCH)
        # Blocking calls get a connection of their own, so that `wake` can unblock them.
        self._blocking = redis.client()
        self._blocked_id: int | None = None

    async def _block(self, command: str, *args: Any) -> Any:
        """Run a blocking command (BRPOP, BLMOVE) that :meth:`wake` can cut short."""
        self._blocked_id = await self._blocking.client_id()
        try:
            return await self._blocking.execute_command(command, *args)
        finally:
            self._blocked_id = None

    async def wake(self) -> None:
        """End a blocking fetch now, as if it had timed out: nothing popped is lost."""
        if self._blocked_id is not None:
            await self.redis.client_unblock(self._blocked_id)

    async def close(self) -> None:
        await self._blocking.aclose()

    def _order(self) -> list[str]:
        return queue_order(self.queues, self.strict)

    async def retrieve(self, limit: int) -> list[UnitOfWork]:
        """Up to ``limit`` jobs; waits up to FETCH_TIMEOUT when the queues are empty."""
        order = self._order()
        keys = [self.keys.queue(name) for name in order]
        found = await self._take_batch(keys=keys, args=[limit, len(keys)])
        if found:
            return _units(order, found)
        popped = await self._block("BRPOP", *keys, FETCH_TIMEOUT)
        if popped is None:
            return []
        return [UnitOfWork(self.keys.queue_name(popped[0]), popped[1])]

    def acknowledge(self, unit: UnitOfWork) -> None:
        """Nothing to do: the job left Redis when it was taken."""

    async def reconcile(self, running: list[UnitOfWork]) -> int:
        """Nothing to reconcile: a reply lost with the connection loses its job, as in
        Sidekiq's BasicFetch."""
        return 0

    async def flush(self) -> None:
        """Nothing is buffered."""

    async def requeue(self, units: list[UnitOfWork]) -> None:
        """Put jobs back at the front of their queues (RPUSH: they run next)."""
        if not units:
            return
        pipe = self.redis.pipeline(transaction=False)
        for unit in units:
            pipe.rpush(self.keys.queue(unit.queue), unit.raw)
        await pipe.execute()

    def stage_register(self, pipe: Any) -> None:
        """Nothing to register: nothing is left behind but the jobs being run."""

    async def unregister(self) -> None:
        """Nothing registered."""

    async def recover(self, lock_ttl: float) -> int:
        return 0


class ReliableFetch(BasicFetch):
    """At-least-once: jobs wait in a private working list until acknowledged."""

    reliable = True

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        queues: list[str],
        strict: bool,
        identity: str,
        max_interruptions: int = MAX_INTERRUPTIONS,
    ) -> None:
        super().__init__(redis, keys, queues, strict, identity)
        self.max_interruptions = max_interruptions
        self._move_back = redis.register_script(MOVE_BACK)
        self._acks: list[UnitOfWork] = []
        self._acks_waiting = asyncio.Event()
        self._acks_lock = asyncio.Lock()
        self._acknowledger_stopped = False

    def _working(self, queue: str) -> str:
        return self.keys.working(self.identity, queue)

    async def retrieve(self, limit: int) -> list[UnitOfWork]:
        order = self._order()
        keys = [self.keys.queue(name) for name in order]
        working = [self._working(name) for name in order]
        found = await self._take_batch(keys=keys + working, args=[limit, len(keys)])
        if found:
            return _units(order, found)
        wait = FETCH_TIMEOUT if len(order) == 1 else RELIABLE_MULTI_QUEUE_WAIT
        moved = await self._block("BLMOVE", keys[0], working[0], "RIGHT", "LEFT", wait)
        return [] if moved is None else [UnitOfWork(order[0], moved)]

    def acknowledge(self, unit: UnitOfWork) -> None:
        """Finished: drop it from the working list (batched; see :meth:`run_acknowledger`)."""
        self._acks.append(unit)
        self._acks_waiting.set()

    async def flush(self) -> None:
        """Send the acknowledgements gathered so far in one round trip."""
        async with self._acks_lock:
            if not self._acks:
                return
            acks, self._acks = self._acks, []
            self._acks_waiting.clear()
            pipe = self.redis.pipeline(transaction=False)
            for unit in acks:
                pipe.lrem(self._working(unit.queue), -1, unit.raw)
            try:
                await pipe.execute()
            except BaseException:
                self._acks = acks + self._acks  # again next time; the jobs stay recoverable
                self._acks_waiting.set()
                raise

    async def run_acknowledger(self) -> None:
        """Send acknowledgements as they come, until :meth:`stop_acknowledger`."""
        while True:
            await self._acks_waiting.wait()
            if self._acknowledger_stopped:
                return
            try:
                await self.flush()
            except Exception as error:
                log.warning("could not acknowledge jobs, will retry: %s", error)
                await asyncio.sleep(1)

    def stop_acknowledger(self) -> None:
        """End :meth:`run_acknowledger`; what is left is sent by a last :meth:`flush`."""
        self._acknowledger_stopped = True
        self._acks_waiting.set()

    async def reconcile(self, running: list[UnitOfWork]) -> int:
        """After a lost connection: a fetch whose reply was lost left jobs in our working
        lists that no slot runs; push those back to their queues. Returns how many."""
        async with self._acks_lock:
            known = Counter((unit.queue, unit.raw) for unit in [*running, *self._acks])
            orphans = []
            for queue in dict.fromkeys(self.queues):
                for raw in await self.redis.lrange(self._working(queue), 0, -1):
                    if known[(queue, raw)] > 0:
                        known[(queue, raw)] -= 1
                    else:
                        orphans.append(UnitOfWork(queue, raw))
            await self.requeue(orphans)
        if orphans:
            log.warning("pushed back %d jobs taken while the connection was lost", len(orphans))
        return len(orphans)

    async def requeue(self, units: list[UnitOfWork]) -> None:
        for unit in units:
            await self._move_back(
                keys=[self._working(unit.queue), self.keys.queue(unit.queue), self.keys.dead],
                args=[unit.raw, unit.raw, "queue"],
            )

    def stage_register(self, pipe: Any) -> None:
        """Say, on each heartbeat, which working lists this process may leave behind."""
        queues = list(dict.fromkeys(self.queues))
        pipe.sadd(self.keys.reliable_processes, self.identity)
        pipe.sadd(self.keys.reliable_queues(self.identity), *queues)

    async def unregister(self) -> None:
        """On a clean stop: leave the registry, unless jobs are still left in working lists
        (acknowledgements that could not be sent), which recovery will then push back."""
        queues = list(dict.fromkeys(self.queues))
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(self._working(queue))
        if any(await pipe.execute()):
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(self.keys.reliable_processes, self.identity)
        pipe.delete(self.keys.reliable_queues(self.identity))
        await pipe.execute()

    async def recover(self, lock_ttl: float) -> int:
        """Push back the jobs of registered processes whose heartbeat is gone."""
        lock = await self.redis.set(
            self.keys.recovery_lock, self.identity, nx=True, ex=max(1, int(lock_ttl))
        )
        if not lock:
            return 0
        recovered = 0
        try:
            for identity in await self.redis.smembers(self.keys.reliable_processes):
                if identity == self.identity:
                    continue
                if await self.redis.exists(self.keys.process(identity)):
                    continue
                queues_key = self.keys.reliable_queues(identity)
                for queue in await self.redis.smembers(queues_key):
                    recovered += await self._recover_list(self.keys.working(identity, queue), queue)
                pipe = self.redis.pipeline(transaction=True)
                pipe.delete(queues_key)
                pipe.srem(self.keys.reliable_processes, identity)
                await pipe.execute()
        finally:
            if await self.redis.get(self.keys.recovery_lock) == self.identity:
                await self.redis.delete(self.keys.recovery_lock)
        if recovered:
            log.warning("recovered %d jobs from workers that died", recovered)
        return recovered

    async def _recover_list(self, working: str, queue: str) -> int:
        moved = 0
        while (raw := await self.redis.lindex(working, -1)) is not None:
            replacement, destination = self._interrupted(raw)
            moved += await self._move_back(
                keys=[working, self.keys.queue(queue), self.keys.dead],
                args=[raw, replacement, destination, repr(now()), DEAD_TIMEOUT, DEAD_MAX_JOBS],
            )
        return moved

    def _interrupted(self, raw: str) -> tuple[str, str]:
        """The payload to put back, and where: its queue, or the dead set for a poison job."""
        try:
            job = loads(raw)
        except ValueError:
            return raw, "dead"
        if not isinstance(job, dict):
            return raw, "dead"
        count = job.get("interrupted_count", 0)
        job["interrupted_count"] = (count if isinstance(count, int) else 0) + 1
        if job["interrupted_count"] <= self.max_interruptions:
            return dumps(job), "queue"
        job["error_class"] = "Interrupted"
        job["error_message"] = error_message(
            RuntimeError(
                f"the worker running this job died {job['interrupted_count']} times; "
                "it was moved to the dead set instead of running again"
            )
        )
        job.setdefault("failed_at", now())
        return dumps(job), "dead"


def _units(order: list[str], found: list[Any]) -> list[UnitOfWork]:
    """Decode TAKE_BATCH's flat reply: 1-based queue index, job, ..."""
    return [UnitOfWork(order[int(found[i]) - 1], found[i + 1]) for i in range(0, len(found), 2)]
