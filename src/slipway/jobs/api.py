"""Reading and steering the job system, like ``Sidekiq::API``: stats, queues, the scheduled,
retry and dead sets, processes and the work in progress.

Every class takes an optional ``redis_url`` (default: ``REDIS_URL``, else
``SLIPWAY_REDIS_URL``) and ``namespace``; it sees Ruby and Python workers alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slipway.jobs.client import Client, redis_url_from_env
from slipway.jobs.connection import sync_redis
from slipway.jobs.keys import Keys
from slipway.jobs.payload import Job, dumps, loads, now, timestamp_seconds
from slipway.jobs.retry import stage_kill, uncompress_backtrace


class _View:
    def __init__(self, redis_url: str | None = None, namespace: str | None = None) -> None:
        self.redis_url = redis_url or redis_url_from_env()
        self.namespace = namespace
        self.keys = Keys(namespace)
        # Any: redis-py's types do not follow decode_responses.
        self.redis: Any = sync_redis(self.redis_url, decode_responses=True)

    def _client(self) -> Client:
        return Client(namespace=self.namespace, connection=self.redis)


class JobRecord:
    """One job payload as stored, with Sidekiq's readers."""

    def __init__(self, raw: str, queue: str | None = None) -> None:
        self.raw = raw
        try:
            parsed = loads(raw)
        except ValueError:
            parsed = None
        self.item: Job = parsed if isinstance(parsed, dict) else {}
        self.queue = queue or self.item.get("queue")

    def __getitem__(self, name: str) -> Any:
        return self.item.get(name)

    @property
    def jid(self) -> str | None:
        return self.item.get("jid")

    @property
    def klass(self) -> str | None:
        return self.item.get("class")

    @property
    def args(self) -> list[Any]:
        args = self.item.get("args")
        return args if isinstance(args, list) else []

    @property
    def enqueued_at(self) -> float | None:
        return timestamp_seconds(self.item.get("enqueued_at"))

    @property
    def created_at(self) -> float | None:
        return timestamp_seconds(self.item.get("created_at") or self.item.get("enqueued_at"))

    @property
    def latency(self) -> float:
        start = self.enqueued_at or self.created_at
        return max(0.0, now() - start) if start else 0.0

    @property
    def error_backtrace(self) -> list[str] | None:
        value = self.item.get("error_backtrace")
        return uncompress_backtrace(value) if value else None


class Stats(_View):
    """Totals as the Web UI's dashboard shows them (read when created)."""

    def __init__(self, redis_url: str | None = None, namespace: str | None = None) -> None:
        super().__init__(redis_url, namespace)
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(k.stat("processed"))
        pipe.get(k.stat("failed"))
        pipe.zcard(k.schedule)
        pipe.zcard(k.retry)
        pipe.zcard(k.dead)
        pipe.scard(k.processes)
        pipe.smembers(k.queues)
        pipe.smembers(k.processes)
        (
            processed,
            failed,
            self.scheduled_size,
            self.retry_size,
            self.dead_size,
            self.processes_size,
            queues,
            processes,
        ) = pipe.execute()
        self.processed = int(processed or 0)
        self.failed = int(failed or 0)
        pipe = self.redis.pipeline(transaction=False)
        for queue in sorted(queues):
            pipe.llen(k.queue(queue))
        for identity in processes:
            pipe.hget(k.process(identity), "busy")
        results = pipe.execute()
        self.queues = dict(zip(sorted(queues), results[: len(queues)], strict=True))
        self.enqueued = sum(self.queues.values())
        self.workers_size = sum(int(busy or 0) for busy in results[len(queues) :])

    @property
    def default_queue_latency(self) -> float:
        return Queue("default", self.redis_url, self.namespace).latency


class Queue(_View):
    """A queue: its size, latency (age of the oldest job) and jobs, oldest last."""

    def __init__(
        self, name: str = "default", redis_url: str | None = None, namespace: str | None = None
    ) -> None:
        super().__init__(redis_url, namespace)
        self.name = name

    @classmethod
    def all(cls, redis_url: str | None = None, namespace: str | None = None) -> list[Queue]:
        view = _View(redis_url, namespace)
        return [
            cls(name, redis_url, namespace)
            for name in sorted(view.redis.smembers(view.keys.queues))
        ]

    @property
    def size(self) -> int:
        return int(self.redis.llen(self.keys.queue(self.name)))

    @property
    def latency(self) -> float:
        oldest = self.redis.lrange(self.keys.queue(self.name), -1, -1)
        return JobRecord(oldest[0]).latency if oldest else 0.0

    def jobs(self) -> Iterator[JobRecord]:
        for raw in self.redis.lrange(self.keys.queue(self.name), 0, -1):
            yield JobRecord(raw, self.name)

    def find_job(self, jid: str) -> JobRecord | None:
        return next((job for job in self.jobs() if job.jid == jid), None)

    def clear(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.unlink(self.keys.queue(self.name))
        pipe.srem(self.keys.queues, self.name)
        pipe.execute()


class SortedEntry(JobRecord):
    """A job in the scheduled, retry or dead set, with its score (when it is due / died)."""

    def __init__(self, job_set: JobSet, raw: str, score: float) -> None:
        super().__init__(raw)
        self.job_set = job_set
        self.score = score

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.score, UTC)

    def _remove(self) -> bool:
        return bool(self.job_set.redis.zrem(self.job_set.key, self.raw))

    def delete(self) -> bool:
        return self._remove()

    def add_to_queue(self) -> None:
        """Enqueue it now, as it is."""
        if self._remove():
            self.job_set._client().push(dict(self.item))

    def retry(self) -> None:
        """Enqueue it now, giving back the retry it used (Web UI "Retry")."""
        if self._remove():
            job = dict(self.item)
            if isinstance(job.get("retry_count"), int):
                job["retry_count"] -= 1
            self.job_set._client().push(job)

    def kill(self) -> None:
        """Move it to the dead set."""
        if self._remove():
            pipe = self.job_set.redis.pipeline(transaction=True)
            stage_kill(pipe, self.job_set.keys, self.raw)
            pipe.execute()


class JobSet(_View):
    set_name = ""

    @property
    def key(self) -> str:
        return self.keys.key(self.set_name)

    @property
    def size(self) -> int:
        return int(self.redis.zcard(self.key))

    def __iter__(self) -> Iterator[SortedEntry]:
        for raw, score in self.redis.zrange(self.key, 0, -1, withscores=True):
            yield SortedEntry(self, raw, score)

    def find_job(self, jid: str) -> SortedEntry | None:
        return next((entry for entry in self if entry.jid == jid), None)

    def clear(self) -> None:
        self.redis.unlink(self.key)

    def retry_all(self) -> None:
        for entry in list(self):
            entry.retry()

    def kill_all(self) -> None:
        for entry in list(self):
            entry.kill()


class ScheduledSet(JobSet):
    set_name = "schedule"


class RetrySet(JobSet):
    set_name = "retry"


class DeadSet(JobSet):
    set_name = "dead"


@dataclass
class Process:
    """A worker process as its heartbeat describes it (Ruby or Python alike)."""

    identity: str
    info: dict[str, Any]
    busy: int
    beat: float
    stopping: bool  # quiet or shutting down
    rss: int
    rtt_us: int
    _view: _View

    def __getitem__(self, name: str) -> Any:
        return self.info.get(name)

    def _signal(self, name: str) -> None:
        key = self._view.keys.signals(self.identity)
        pipe = self._view.redis.pipeline(transaction=True)
        pipe.lpush(key, name)
        pipe.expire(key, 60)
        pipe.execute()

    def quiet(self) -> None:
        """Stop fetching new jobs (``quiet!``)."""
        self._signal("TSTP")

    def stop(self) -> None:
        """Shut down gracefully (``stop!``)."""
        self._signal("TERM")

    def dump_threads(self) -> None:
        self._signal("TTIN")


class ProcessSet(_View):
    """Live processes; entries whose heartbeat expired are pruned, as Sidekiq does."""

    def cleanup(self) -> int:
        identities = sorted(self.redis.smembers(self.keys.processes))
        pipe = self.redis.pipeline(transaction=False)
        for identity in identities:
            pipe.hget(self.keys.process(identity), "info")
        dead = [
            identity
            for identity, info in zip(identities, pipe.execute(), strict=True)
            if info is None
        ]
        return int(self.redis.srem(self.keys.processes, *dead)) if dead else 0

    def __iter__(self) -> Iterator[Process]:
        self.cleanup()
        identities = sorted(self.redis.smembers(self.keys.processes))
        pipe = self.redis.pipeline(transaction=False)
        for identity in identities:
            pipe.hmget(
                self.keys.process(identity), "info", "busy", "beat", "quiet", "rss", "rtt_us"
            )
        for identity, (info, busy, beat, quiet, rss, rtt) in zip(
            identities, pipe.execute(), strict=True
        ):
            if info is None:
                continue
            yield Process(
                identity,
                loads(info),
                int(busy or 0),
                float(beat or 0),
                quiet == "true",
                int(rss or 0),
                int(rtt or 0),
                self,
            )

    @property
    def size(self) -> int:
        return int(self.redis.scard(self.keys.processes))


@dataclass
class WorkInProgress:
    identity: str
    tid: str
    queue: str
    run_at: int
    job: JobRecord


class WorkSet(_View):
    """The jobs being run right now, across processes (as of their last heartbeat)."""

    def __iter__(self) -> Iterator[WorkInProgress]:
        work: list[WorkInProgress] = []
        for identity in sorted(self.redis.smembers(self.keys.processes)):
            if not self.redis.exists(self.keys.process(identity)):
                continue
            entries = self.redis.hgetall(self.keys.work(identity)) or self.redis.hgetall(
                self.keys.workers(identity)
            )
            for tid, value in entries.items():
                item = loads(value)
                payload = item.get("payload")
                raw = payload if isinstance(payload, str) else dumps(payload)
                work.append(
                    WorkInProgress(
                        identity,
                        tid,
                        item.get("queue", ""),
                        int(item.get("run_at", 0)),
                        JobRecord(raw),
                    )
                )
        yield from sorted(work, key=lambda w: w.run_at)

    @property
    def size(self) -> int:
        return sum(1 for _ in self)
