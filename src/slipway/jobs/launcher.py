"""Starts and stops everything a worker process runs (Sidekiq's ``launcher.rb``): the
manager, the scheduled poller, periodic jobs, reliable-fetch recovery, and the heartbeat that
makes the process visible to Sidekiq's API and Web UI."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from slipway.jobs import registry
from slipway.jobs.connection import async_redis
from slipway.jobs.fetch import BasicFetch, ReliableFetch
from slipway.jobs.keys import Keys
from slipway.jobs.manager import Manager
from slipway.jobs.payload import dumps, now
from slipway.jobs.periodic import PeriodicScheduler, declared
from slipway.jobs.processor import JobLineWriter, Processor
from slipway.jobs.retry import MAX_RETRIES, JobRetry
from slipway.jobs.scheduled import Poller
from slipway.jobs.threads import JobThreads

log = logging.getLogger("slipway.jobs")

STATS_TTL = 5 * 365 * 24 * 60 * 60
VERSION = "6.4.1"  # the Sidekiq wire format we speak, shown by Web UIs that read `version`
# After the -t timeout, the time Redis gets to take unfinished jobs back and the heartbeat
# away, then to close the connections: a Redis that does not answer cannot hold a stopping
# worker longer. (As with Sidekiq, set -t a few seconds below the kill timeout.)
SHUTDOWN_GRACE = 1.0
CLOSE_TIMEOUT = 0.5


def parse_queues(specs: list[str]) -> tuple[list[str], bool]:
    """``-q NAME[,WEIGHT]`` options as Sidekiq's ``parse_queue``: (queue list, strict).

    A queue is listed ``weight`` times; any weight above 0 turns strict ordering off.
    """
    queues: list[str] = []
    strict = True
    for spec in specs or ["default"]:
        name, _, weight_text = spec.partition(",")
        name = name.strip()
        if not name:
            raise ValueError(f"invalid queue {spec!r}: the name is empty")
        if name in queues:
            raise ValueError(f"queue {name!r} cannot be given twice")
        try:
            weight = int(weight_text) if weight_text else 0
        except ValueError:
            raise ValueError(f"invalid queue {spec!r}: the weight must be an integer") from None
        if weight < 0:
            raise ValueError(f"invalid queue {spec!r}: the weight cannot be negative")
        queues += [name] * max(weight, 1)
        if weight > 0:
            strict = False
    return queues, strict


@dataclass
class WorkerConfig:
    """Defaults are Sidekiq 6.x's; the intervals exist to make tests fast."""

    redis_url: str
    namespace: str | None = None
    queues: list[str] = field(default_factory=lambda: ["default"])
    strict: bool = True
    concurrency: int = 10
    timeout: float = 25.0
    reliable: bool = False
    tag: str = ""
    labels: list[str] = field(default_factory=list)
    max_retries: int = MAX_RETRIES
    max_interruptions: int = 3
    heartbeat_interval: float = 5.0
    heartbeat_ttl: int = 60
    recovery_interval: float = 60.0
    poll_interval_average: float | None = None
    initial_poll_wait: float | None = None
    job_lines: JobLineWriter | None = None  # the line per job, faster than logging's


def _abandon(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` without waiting for it, and ignore how it ends: a cancellation inside
    a Redis call can come out as a connection error, or be swallowed."""
    task.cancel()
    task.add_done_callback(_ignore_outcome)


def _ignore_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: asyncio does not log it as never retrieved


def _identity() -> str:
    hostname = os.environ.get("DYNO") or socket.gethostname()
    return f"{hostname}:{os.getpid()}:{secrets.token_hex(6)}"


class Launcher:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.keys = Keys(config.namespace)
        self.identity = _identity()
        self.started_at = now()
        # No automatic retries: replaying a fetch whose reply was lost would take jobs twice;
        # each loop handles errors itself (see Manager.run).
        self.redis = async_redis(
            config.redis_url,
            decode_responses=True,
            encoding_errors="surrogateescape",
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        self.fetch: BasicFetch
        if config.reliable:
            self.fetch = ReliableFetch(
                self.redis,
                self.keys,
                config.queues,
                config.strict,
                self.identity,
                config.max_interruptions,
            )
        else:
            self.fetch = BasicFetch(
                self.redis, self.keys, config.queues, config.strict, self.identity
            )
        self.threads = JobThreads(config.concurrency)
        self.processor = Processor(
            self.redis,
            self.fetch,
            JobRetry(self.redis, self.keys, config.max_retries),
            self.threads,
            config.job_lines,
        )
        self.manager = Manager(self.fetch, self.processor, config.concurrency)
        self.poller = Poller(
            self.redis,
            self.keys,
            config.poll_interval_average,
            initial_wait=config.initial_poll_wait,
        )
        self.periodic = PeriodicScheduler(self.redis, self.keys, declared())
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()  # set once visible in Redis and fetching
        # Ends the background loops. They are not cancelled: a cancellation arriving inside a
        # Redis call can be turned into a timeout and swallowed (Python 3.11's asyncio.timeout).
        self._closing = asyncio.Event()
        self._step = "starting"  # what the shutdown is doing
        self._trouble: str | None = None  # why the shutdown was not clean, for the last line
        self._info = dumps(
            {
                "hostname": self.identity.rsplit(":", 2)[0],
                "started_at": self.started_at,
                "pid": os.getpid(),
                "tag": config.tag,
                "concurrency": config.concurrency,
                "queues": list(dict.fromkeys(config.queues)),
                "labels": config.labels,
                "identity": self.identity,
                "version": VERSION,
            }
        )
        self._process = psutil.Process()

    # -- life cycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until stopped (``request_stop``, or TERM from the Web UI), then shut down
        gracefully: within ``timeout`` + SHUTDOWN_GRACE + CLOSE_TIMEOUT, whatever Redis does."""
        registry.configure(self.config.redis_url, self.config.namespace)
        loop = asyncio.get_running_loop()
        self.threads.start(loop)
        log.info(
            "worker %s starting: queues %s (%s), concurrency %d, %s fetch",
            self.identity,
            ",".join(dict.fromkeys(self.config.queues)),
            "strict" if self.config.strict else "weighted",
            self.config.concurrency,
            "reliable" if self.fetch.reliable else "basic",
        )
        if not await self._first_heartbeat():
            await self._close()
            return
        tasks = [
            loop.create_task(
                self._every(self.config.heartbeat_interval, self._heartbeat), name="heartbeat"
            ),
            loop.create_task(self.poller.run(), name="poller"),
            loop.create_task(self.periodic.run(), name="periodic"),
        ]
        if isinstance(self.fetch, ReliableFetch):
            tasks += [
                loop.create_task(self.fetch.run_acknowledger(), name="acknowledger"),
                loop.create_task(
                    self._every(self.config.recovery_interval, self._recover, first=True),
                    name="recovery",
                ),
            ]
        manager = loop.create_task(self.manager.run(), name="manager")
        self.ready.set()
        await self.stopping.wait()
        await self._shutdown(manager, tasks)

    def request_stop(self) -> None:
        log.info("shutting down (up to %.0f s for busy jobs)", self.config.timeout)
        self.stopping.set()

    def quiet(self) -> None:
        if not self.manager.quieted.is_set():
            log.info("quiet: no new jobs will be fetched")
        self.manager.quiet()
        self.poller.terminate()
        self.periodic.terminate()

    def dump(self) -> None:
        """TTIN: log where every task and thread is, as Sidekiq's thread dump."""
        for task in asyncio.all_tasks():
            stack = io.StringIO()
            task.print_stack(file=stack)
            log.warning("task %s: %s", task.get_name(), stack.getvalue())
        for thread_id, frame in sys._current_frames().items():
            log.warning("thread %s:\n%s", thread_id, "".join(traceback.format_stack(frame)))

    async def _shutdown(self, manager: asyncio.Task[None], tasks: list[asyncio.Task[Any]]) -> None:
        """Drain within the timeout, then give Redis SHUTDOWN_GRACE to take the rest back;
        what is still waiting for Redis then is abandoned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        self.quiet()
        drain = loop.create_task(self._drain(deadline, manager, tasks), name="drain")
        await asyncio.wait([drain], timeout=deadline + SHUTDOWN_GRACE - loop.time())
        if not drain.done() or drain.exception() is not None:
            error = drain.exception() if drain.done() else None
            self._trouble = (
                f"{self._step} failed: {type(error).__name__}: {error}"
                if error is not None
                else f"gave up {self._step} {SHUTDOWN_GRACE:g} s after the timeout"
            )
            self._end_loops()
            for task in [drain, manager, *tasks, *self.manager.running]:
                _abandon(task)
        await self._close()

    async def _drain(
        self, deadline: float, manager: asyncio.Task[None], tasks: list[asyncio.Task[Any]]
    ) -> None:
        self._step = "pushing unfinished jobs back to Redis"
        await self.manager.stop(deadline)
        if self.manager.running:
            self._step = "waiting for interrupted jobs to end"
            await asyncio.wait(list(self.manager.running))
        self._step = "waiting for the last fetch from Redis"
        await manager  # its last fetch ends within FETCH_TIMEOUT; late jobs are requeued
        self._step = "ending the heartbeat and the pollers"
        self._end_loops()
        await asyncio.wait(tasks)
        self._step = "clearing the heartbeat in Redis"
        await self.fetch.flush()
        await self._heartbeat(raise_errors=True)  # the last counts
        await self.redis.srem(self.keys.processes, self.identity)
        await self.redis.unlink(self.keys.work(self.identity), self.keys.workers(self.identity))
        await self.fetch.unregister()

    def _end_loops(self) -> None:
        """Tell the background loops to end (they are not cancelled: see ``_closing``)."""
        self._closing.set()
        if isinstance(self.fetch, ReliableFetch):
            self.fetch.stop_acknowledger()

    async def _close(self) -> None:
        """Let the job threads go and close the connections, without waiting for a Redis
        that does not answer; then the last log line, which says what went wrong if anything
        did."""
        self.threads.stop()
        closing = asyncio.create_task(self._close_connections())
        await asyncio.wait([closing], timeout=CLOSE_TIMEOUT)
        _abandon(closing)
        if self._trouble is None:
            log.info("worker %s stopped", self.identity)
        else:
            log.warning("worker %s stopped; %s", self.identity, self._trouble)

    async def _close_connections(self) -> None:
        await self.fetch.close()
        await self.redis.aclose()

    # -- heartbeat --------------------------------------------------------------------------

    async def _first_heartbeat(self) -> bool:
        """The first heartbeat must land before fetching: reliable recovery relies on it.
        Retried until it lands (True) or a stop is requested (False): an attempt can wait
        for Redis for seconds, and a stop must not."""
        stop = asyncio.create_task(self.stopping.wait())
        self._trouble = "Redis was never reached (it did not answer)"
        try:
            while not self.stopping.is_set():
                beat = asyncio.create_task(self._heartbeat(raise_errors=True))
                await asyncio.wait([beat, stop], return_when=asyncio.FIRST_COMPLETED)
                if not beat.done():
                    _abandon(beat)  # nothing to lose: no job was taken yet
                    return False
                error = beat.exception()
                if error is None:
                    self._trouble = None
                    return True
                self._trouble = f"Redis was never reached ({type(error).__name__}: {error})"
                log.error("cannot reach Redis, retrying: %s", error)
                await asyncio.wait([stop], timeout=1)
            return False
        finally:
            stop.cancel()

    async def _every(
        self, interval: float, action: Callable[[], Awaitable[None]], first: bool = False
    ) -> None:
        """Run ``action`` every ``interval`` seconds until closing."""
        if first:
            await action()
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval)
            if not self._closing.is_set():
                await action()

    async def _heartbeat(self, raise_errors: bool = False) -> None:
        """Sidekiq's ❤: stats and the work hash, then the process hash; then any signal."""
        processed, failed = self.processor.counters.take()
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        ttl = self.config.heartbeat_ttl
        busy = dict(self.processor.busy)
        try:
            pipe = self.redis.pipeline(transaction=True)
            for name, count in (("processed", processed), ("failed", failed)):
                pipe.incrby(self.keys.stat(name), count)
                pipe.incrby(self.keys.stat(name, day), count)
                pipe.expire(self.keys.stat(name, day), STATS_TTL)
            for work_key in (self.keys.work(self.identity), self.keys.workers(self.identity)):
                pipe.unlink(work_key)
                if busy:
                    pipe.hset(work_key, mapping={tid: work.as_json() for tid, work in busy.items()})
                pipe.expire(work_key, ttl)
            await pipe.execute()

            started = time.perf_counter()
            await self.redis.ping()
            rtt_us = int((time.perf_counter() - started) * 1_000_000)

            pipe = self.redis.pipeline(transaction=True)
            pipe.sadd(self.keys.processes, self.identity)
            pipe.hset(
                self.keys.process(self.identity),
                mapping={
                    "info": self._info,
                    "busy": len(busy),
                    "beat": repr(now()),
                    "quiet": "true" if self.manager.quieted.is_set() else "false",
                    "rtt_us": rtt_us,
                    "rss": self._process.memory_info().rss // 1024,
                },
            )
            pipe.expire(self.keys.process(self.identity), ttl)
            self.fetch.stage_register(pipe)
            pipe.rpop(self.keys.signals(self.identity))
            results = await pipe.execute()
        except Exception as error:
            self.processor.counters.give_back(processed, failed)  # not lost: next beat
            if raise_errors:
                raise
            log.error("heartbeat: %s", error)
            return
        self._on_signal(results[-1])

    def _on_signal(self, name: str | None) -> None:
        """A signal sent through Redis by Sidekiq's Web UI or API (``Process#stop!``...)."""
        if not name:
            return
        log.info("received %s through Redis", name)
        actions = {
            "TERM": self.request_stop,
            "INT": self.request_stop,
            "TSTP": self.quiet,
            "USR1": self.quiet,
            "TTIN": self.dump,
        }
        action = actions.get(name)
        if action is None:
            log.warning("ignoring unknown signal %r", name)
        else:
            action()

    async def _recover(self) -> None:
        try:
            await self.fetch.recover(lock_ttl=self.config.heartbeat_ttl)
        except Exception as error:
            log.error("reliable fetch recovery: %s", error)
