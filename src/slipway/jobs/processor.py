"""Running one job, as Sidekiq's ``processor.rb``: parse, resolve, call, then record the
outcome (retry, dead set), the stats, and one structured log line.

Async jobs run on the event loop; sync jobs run in a thread pool so they never block it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slipway.jobs.fetch import BasicFetch, UnitOfWork
from slipway.jobs.payload import Job, dumps, loads, now
from slipway.jobs.registry import JobFunction, lookup
from slipway.jobs.retry import JobRetry, error_class, error_message, stage_kill
from slipway.jobs.threads import JobThreads

log = logging.getLogger("slipway.jobs")
job_log = logging.getLogger("slipway.jobs.job")

REQUEUE_PAUSE = 1.0

# Writes a job's INFO line faster than logging would (slipwayd's serverlog.HotLines): the
# logger, the message and the line's fields.
JobLineWriter = Callable[[logging.Logger, str, dict[str, Any]], None]


class InvalidJob(ValueError):
    """A payload no worker could run: not a JSON object, or without a class or an args list."""

    def __init__(self, message: str, job: Job | None = None) -> None:
        super().__init__(message)
        self.job = job  # the decoded object, when it was one


def _to36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


@dataclass(slots=True)
class Work:
    """A job being run: what the heartbeat publishes in the work hash."""

    unit: UnitOfWork
    run_at: int

    def as_json(self) -> str:
        return dumps({"queue": self.unit.queue, "payload": self.unit.raw, "run_at": self.run_at})


@dataclass
class Counters:
    processed: int = 0
    failed: int = 0

    def take(self) -> tuple[int, int]:
        taken = (self.processed, self.failed)
        self.processed = self.failed = 0
        return taken

    def give_back(self, processed: int, failed: int) -> None:
        self.processed += processed
        self.failed += failed


@dataclass
class Processor:
    redis: Any
    fetch: BasicFetch
    retry: JobRetry
    threads: JobThreads
    job_lines: JobLineWriter | None = None
    counters: Counters = field(default_factory=Counters)
    busy: dict[str, Work] = field(default_factory=dict)
    _tids: itertools.count[int] = field(default_factory=itertools.count)
    _pid: int = field(default_factory=os.getpid)

    async def process(self, unit: UnitOfWork) -> None:
        """Run one job to its end. Cancelled only by a hard shutdown, which requeues it."""
        started = time.perf_counter()
        tid = _to36(next(self._tids) ^ self._pid)
        self.busy[tid] = Work(unit, int(now()))
        job: Job | None = None
        outcome = "interrupted"  # unless the job gets further than a cancellation
        try:
            job = parse(unit.raw)
            function = lookup(job["class"])
            await self._call(job, function)
            outcome = "done"
        except asyncio.CancelledError:
            raise
        except InvalidJob as error:
            self.counters.failed += 1
            job = error.job
            outcome = await self._record(unit, self._bury(unit.raw, error))
        except BaseException as error:  # everything a job raises is the job's failure
            assert job is not None
            self.counters.failed += 1
            log.warning(
                "job %s %s failed: %s: %s",
                job.get("class"),
                job.get("jid"),
                error_class(error),
                error_message(error)[:200],
            )
            outcome = await self._record(unit, self.retry.handle(job, unit.queue, error, function))
        finally:
            del self.busy[tid]
            if outcome != "interrupted":
                self.counters.processed += 1
            if outcome not in ("interrupted", "requeued"):
                self.fetch.acknowledge(unit)
            self._log_job(job, unit, outcome, started)

    async def _record(self, unit: UnitOfWork, recording: Awaitable[str]) -> str:
        """The outcome a failure was recorded as; if Redis cannot take it, the job goes back
        to its queue (as soon as Redis answers) to run again rather than being lost."""
        try:
            return await recording
        except Exception as error:
            log.error("cannot record a failed job (%s); pushing it back to its queue", error)
            while True:
                try:
                    await self.fetch.requeue([unit])
                    return "requeued"
                except Exception:
                    await asyncio.sleep(REQUEUE_PAUSE)

    async def _call(self, job: Job, function: JobFunction | None) -> None:
        if function is None:
            # As Ruby's constantize: the retry rules decide (the job may be deployed later).
            raise NameError(f"uninitialized constant {job['class']}")
        if function.is_async:
            await function.function(*job["args"])
        else:
            await self.threads.run(function.function, *job["args"])

    async def _bury(self, raw: str, error: InvalidJob) -> str:
        """Unrunnable payloads go straight to the dead set, never silently dropped."""
        log.error("invalid job sent to the dead set: %s: %.200s", error, raw)
        job = error.job
        if job is not None:  # a JSON object: say what was wrong inside it
            job.update(
                error_class=error_class(error), error_message=error_message(error), failed_at=now()
            )
            raw = dumps(job)
        pipe = self.redis.pipeline(transaction=True)
        stage_kill(pipe, self.fetch.keys, raw)
        await pipe.execute()
        return "dead"

    def _log_job(self, job: Job | None, unit: UnitOfWork, outcome: str, started: float) -> None:
        if not job_log.isEnabledFor(logging.INFO):
            return
        job = job or {}
        fields = {
            "jid": job.get("jid"),
            "class": job.get("class"),
            "queue": unit.queue,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "outcome": outcome,
        }
        if self.job_lines is None:
            job_log.info(outcome, extra=fields)
        else:
            self.job_lines(job_log, outcome, fields)


def parse(raw: str) -> Job:
    try:
        job = loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidJob(f"the payload is not valid JSON: {error}") from None
    if not isinstance(job, dict):
        raise InvalidJob(f"the payload is a JSON {type(job).__name__}, not an object")
    if not isinstance(job.get("class"), str) or not job["class"]:
        raise InvalidJob("the payload has no class", job)
    if not isinstance(job.get("args"), list):
        raise InvalidJob("the payload's args is not a list", job)
    return job
