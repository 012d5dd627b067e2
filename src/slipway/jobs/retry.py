"""What a failure becomes, exactly as Sidekiq's ``job_retry.rb``: a retry, the dead set, or
nothing.

Ruby truthiness matters here: ``retry: 0`` is truthy (no retries, straight to the dead set)
while ``retry: false`` drops the job after the death handlers.
"""

from __future__ import annotations

import base64
import logging
import random
import traceback
import zlib
from collections.abc import Callable
from typing import Any

from slipway.jobs.keys import Keys
from slipway.jobs.payload import Job, dumps, loads, now
from slipway.jobs.registry import DISCARD, KILL, JobFunction

log = logging.getLogger("slipway.jobs")

MAX_RETRIES = 25
ERROR_MESSAGE_LIMIT = 10_000
DEAD_MAX_JOBS = 10_000
DEAD_TIMEOUT = 180 * 24 * 60 * 60

DeathHandler = Callable[[Job, BaseException], Any]


def truthy(value: Any) -> bool:
    """Ruby's truth: only nil and false are false (0 and "" are true)."""
    return value is not None and value is not False


def error_class(error: BaseException) -> str:
    return type(error).__qualname__


def error_message(error: BaseException) -> str:
    message = str(error)[:ERROR_MESSAGE_LIMIT]
    # Scrubbed to valid UTF-8, as Sidekiq does, so the payload always encodes.
    return message.encode("utf-8", "replace").decode("utf-8")


def backtrace_lines(error: BaseException) -> list[str]:
    """Innermost frame first, in Ruby's ``file:line:in `name'`` shape."""
    frames = traceback.extract_tb(error.__traceback__)
    return [f"{frame.filename}:{frame.lineno}:in `{frame.name}'" for frame in reversed(frames)]


def compress_backtrace(lines: list[str]) -> str:
    """``Base64.encode64(Zlib::Deflate.deflate(json))``: a newline after every 60 characters."""
    encoded = base64.b64encode(zlib.compress(dumps(lines).encode())).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def uncompress_backtrace(value: str | list[str]) -> list[str]:
    if isinstance(value, list):  # the legacy raw form
        return value
    lines: list[str] = loads(zlib.decompress(base64.b64decode(value)))
    return lines


def retry_delay(count: int, custom: int | float | None = None) -> float:
    """``count**4 + 15`` (or a positive custom delay) plus ``rand(10) * (count + 1)``."""
    jitter = random.randrange(10) * (count + 1)
    if custom is not None and custom > 0:
        return int(custom) + jitter
    return count**4 + 15 + jitter


def stage_kill(pipe: Any, keys: Keys, raw: str, at: float | None = None) -> None:
    """Add ``raw`` to the dead set and trim it by age and size, as ``DeadSet#kill``."""
    at = now() if at is None else at
    pipe.zadd(keys.dead, {raw: at})
    pipe.zremrangebyscore(keys.dead, "-inf", at - DEAD_TIMEOUT)
    pipe.zremrangebyrank(keys.dead, 0, -DEAD_MAX_JOBS)


class JobRetry:
    """Applies the retry rules to one failed job and writes the outcome to Redis."""

    def __init__(
        self,
        redis: Any,
        keys: Keys,
        max_retries: int = MAX_RETRIES,
        death_handlers: list[DeathHandler] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.max_retries = max_retries
        self.death_handlers = death_handlers or []

    async def handle(
        self, job: Job, queue: str, error: BaseException, function: JobFunction | None
    ) -> str:
        """Record the failure; returns the outcome: ``retry``, ``dead`` or ``dropped``."""
        if function is not None and job.get("retry") is None:
            job["retry"] = function.retry  # local: the job's own option applies
        if not truthy(job.get("retry")):
            self._run_death_handlers(job, error)
            return "dropped"

        retry_option = job["retry"]
        max_attempts = retry_option if type(retry_option) is int else self.max_retries
        job["queue"] = job.get("retry_queue") or queue
        job["error_message"] = error_message(error)
        job["error_class"] = error_class(error)
        if "retry_count" in job and job["retry_count"] is not None:
            job["retried_at"] = now()
            job["retry_count"] += 1
        else:
            job["failed_at"] = now()
            job["retry_count"] = 0
        count = job["retry_count"]

        backtrace = job.get("backtrace")
        if truthy(backtrace):
            lines = backtrace_lines(error)
            if isinstance(backtrace, int) and backtrace is not True:
                lines = lines[:backtrace]
            job["error_backtrace"] = compress_backtrace(lines)

        if count < max_attempts:
            custom = self._custom_delay(function, count, error)
            if custom == DISCARD:
                return "discarded"
            if custom != KILL:
                seconds = custom if isinstance(custom, int | float) else None
                at = now() + retry_delay(count, seconds)
                await self.redis.zadd(self.keys.retry, {dumps(job): at})
                return "retry"
        await self._exhausted(job, error, function)
        return "dead"

    def _custom_delay(
        self, function: JobFunction | None, count: int, error: BaseException
    ) -> int | float | str | None:
        if function is None or function.retry_in is None:
            return None
        try:
            return function.retry_in(count, error)
        except Exception:
            log.exception("retry_in of %s failed; using the default delay", function.name)
            return None

    async def _exhausted(
        self, job: Job, error: BaseException, function: JobFunction | None
    ) -> None:
        if function is not None and function.retries_exhausted is not None:
            try:
                function.retries_exhausted(job, error)
            except Exception:
                log.exception("retries_exhausted of %s failed", function.name)
        if job.get("dead") is not False:
            await self.kill(dumps(job))
        self._run_death_handlers(job, error)

    async def kill(self, raw: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        stage_kill(pipe, self.keys, raw)
        await pipe.execute()

    def _run_death_handlers(self, job: Job, error: BaseException) -> None:
        for handler in self.death_handlers:
            try:
                handler(job, error)
            except Exception:
                log.exception("a death handler failed")
