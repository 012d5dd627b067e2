"""Push jobs exactly as Sidekiq's ``Client#push`` does, from sync or async code.

Immediate jobs: ``SADD queues NAME`` + ``LPUSH queue:NAME json...`` in one MULTI, with
``enqueued_at`` set. Scheduled jobs: ``ZADD schedule AT json``, the member carrying neither
``at`` nor ``enqueued_at``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import redis
import redis.asyncio

from slipway.jobs.connection import async_redis, sync_redis
from slipway.jobs.keys import Keys
from slipway.jobs.payload import Job, check_args, check_native, dumps, epoch, new_jid, now

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

Push = tuple[list[Job], float | None]  # the jobs, and when (None: now)


def redis_url_from_env() -> str:
    """``REDIS_URL``, else ``SLIPWAY_REDIS_URL``, else a local Redis, as Sidekiq looks it up."""
    return os.environ.get("REDIS_URL") or os.environ.get("SLIPWAY_REDIS_URL") or DEFAULT_REDIS_URL


def build_job(queue: str, job_class: str, args: Any, options: dict[str, Any]) -> Job:
    """A normalised payload, as ``normalize_item``: defaults, then the caller's fields."""
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, not {queue!r}")
    if not isinstance(job_class, str) or not job_class:
        raise ValueError(f"job_class must be a non-empty string, not {job_class!r}")
    retry = options.get("retry", True)
    if not isinstance(retry, bool | int):
        raise TypeError(f"retry must be a bool or an int, not {retry!r}")
    for reserved in ("at", "enqueued_at"):
        if reserved in options:
            raise ValueError(f"{reserved} is set by the client; use enqueue_at or enqueue_in")
    tags = options.get("tags")
    if tags is not None and not isinstance(tags, list):
        raise TypeError(f"tags must be a list, not {type(tags).__name__}")
    job: Job = {"class": job_class, "args": check_args(args), "queue": queue, "retry": retry}
    for key, value in options.items():
        if key not in job:
            check_native(value, f"options[{key!r}]")
            job[key] = value
    job["jid"] = job.get("jid") or new_jid()
    job["created_at"] = job.get("created_at") or now()
    return job


def stage_push(pipe: Any, keys: Keys, jobs: Sequence[Job], at: float | None = None) -> None:
    """Queue the commands that push ``jobs`` on a (sync or async) pipeline.

    With ``at`` in the future they go to the schedule set; otherwise to their queues, with a
    fresh ``enqueued_at``, each queue in one LPUSH.
    """
    if at is not None and at > now():
        for job in jobs:
            job.pop("at", None)
            job.pop("enqueued_at", None)
        pipe.zadd(keys.schedule, {dumps(job): at for job in jobs})
        return
    enqueued_at = now()
    by_queue: dict[str, list[str]] = {}
    for job in jobs:
        job.pop("at", None)
        job["enqueued_at"] = enqueued_at
        by_queue.setdefault(job["queue"], []).append(dumps(job))
    for queue, payloads in by_queue.items():
        pipe.sadd(keys.queues, queue)
        pipe.lpush(keys.queue(queue), *payloads)


class _Base:
    """What both clients share: turning calls into payloads. Subclasses only do the I/O."""

    def __init__(self, namespace: str | None) -> None:
        self.keys = Keys(namespace)

    @staticmethod
    def _now(queue: str, job_class: str, args: Any, options: dict[str, Any]) -> Push:
        return [build_job(queue, job_class, args, options)], None

    @staticmethod
    def _in(queue: str, job_class: str, seconds: Any, args: Any, options: dict[str, Any]) -> Push:
        if isinstance(seconds, datetime):
            raise TypeError("enqueue_in takes seconds; use enqueue_at for a datetime")
        return [build_job(queue, job_class, args, options)], now() + epoch(seconds)

    @staticmethod
    def _at(
        queue: str, job_class: str, at: float | datetime, args: Any, options: dict[str, Any]
    ) -> Push:
        return [build_job(queue, job_class, args, options)], epoch(at)

    @staticmethod
    def _bulk(
        queue: str, job_class: str, list_of_args: Iterable[Any], options: dict[str, Any]
    ) -> Push:
        if isinstance(list_of_args, str | bytes) or not isinstance(list_of_args, Iterable):
            raise TypeError("enqueue_bulk takes a list of argument lists")
        if "jid" in options:
            raise ValueError("a jid cannot be shared by several jobs")
        return [build_job(queue, job_class, args, options) for args in list_of_args], None


class Client(_Base):
    """Enqueue jobs for Sidekiq or slipway.jobs workers (blocking calls)."""

    def __init__(
        self,
        redis_url: str | None = None,
        namespace: str | None = None,
        *,
        connection: redis.Redis | None = None,
    ) -> None:
        super().__init__(namespace)
        self.redis = connection or sync_redis(redis_url or redis_url_from_env())

    def _push(self, jobs: list[Job], at: float | None) -> list[str]:
        if jobs:
            pipe = self.redis.pipeline(transaction=True)
            stage_push(pipe, self.keys, jobs, at)
            pipe.execute()
        return [job["jid"] for job in jobs]

    def enqueue(self, queue: str, job_class: str, args: Any = (), **options: Any) -> str:
        return self._push(*self._now(queue, job_class, args, options))[0]

    def enqueue_in(
        self, queue: str, job_class: str, seconds: float, args: Any = (), **options: Any
    ) -> str:
        return self._push(*self._in(queue, job_class, seconds, args, options))[0]

    def enqueue_at(
        self, queue: str, job_class: str, at: float | datetime, args: Any = (), **options: Any
    ) -> str:
        return self._push(*self._at(queue, job_class, at, args, options))[0]

    def enqueue_bulk(
        self, queue: str, job_class: str, list_of_args: Iterable[Any], **options: Any
    ) -> list[str]:
        return self._push(*self._bulk(queue, job_class, list_of_args, options))

    def push(self, job: Job, at: float | None = None) -> str:
        """Push a normalised payload again, keeping its jid and created_at."""
        return self._push([job], at)[0]

    def close(self) -> None:
        self.redis.close()


class AsyncClient(_Base):
    """The same as :class:`Client`, for asyncio code."""

    def __init__(
        self,
        redis_url: str | None = None,
        namespace: str | None = None,
        *,
        connection: redis.asyncio.Redis | None = None,
    ) -> None:
        super().__init__(namespace)
        self.redis = connection or async_redis(redis_url or redis_url_from_env())

    async def _push(self, jobs: list[Job], at: float | None) -> list[str]:
        if jobs:
            pipe = self.redis.pipeline(transaction=True)
            stage_push(pipe, self.keys, jobs, at)
            await pipe.execute()
        return [job["jid"] for job in jobs]

    async def enqueue(self, queue: str, job_class: str, args: Any = (), **options: Any) -> str:
        return (await self._push(*self._now(queue, job_class, args, options)))[0]

    async def enqueue_in(
        self, queue: str, job_class: str, seconds: float, args: Any = (), **options: Any
    ) -> str:
        return (await self._push(*self._in(queue, job_class, seconds, args, options)))[0]

    async def enqueue_at(
        self, queue: str, job_class: str, at: float | datetime, args: Any = (), **options: Any
    ) -> str:
        return (await self._push(*self._at(queue, job_class, at, args, options)))[0]

    async def enqueue_bulk(
        self, queue: str, job_class: str, list_of_args: Iterable[Any], **options: Any
    ) -> list[str]:
        return await self._push(*self._bulk(queue, job_class, list_of_args, options))

    async def push(self, job: Job, at: float | None = None) -> str:
        """Push a normalised payload again, keeping its jid and created_at."""
        return (await self._push([job], at))[0]

    async def aclose(self) -> None:
        await self.redis.aclose()
