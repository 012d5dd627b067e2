"""Owns the ``concurrency`` slots: keeps them busy with fetched jobs, and on shutdown waits
for them, then pushes back what did not finish (Sidekiq's ``manager.rb``)."""

from __future__ import annotations

import asyncio
import logging

from slipway.jobs.fetch import BasicFetch, UnitOfWork
from slipway.jobs.processor import Processor

log = logging.getLogger("slipway.jobs")

FETCH_ERROR_PAUSE = 1.0


class Manager:
    def __init__(self, fetch: BasicFetch, processor: Processor, concurrency: int) -> None:
        self.fetch = fetch
        self.processor = processor
        self.concurrency = concurrency
        self.running: dict[asyncio.Task[None], UnitOfWork] = {}
        self.quieted = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._redis_down_since: float | None = None
        self._wake: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Fetch and start jobs until quiet; never cancelled (a BRPOP reply must not be lost)."""
        loop = asyncio.get_running_loop()
        while not self.quieted.is_set():
            free = self.concurrency - len(self.running)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                units = await self.fetch.retrieve(free)
            except Exception as error:
                if self._redis_down_since is None:
                    self._redis_down_since = loop.time()
                    log.error(
                        "error fetching jobs, retrying every %.0f s: %s", FETCH_ERROR_PAUSE, error
                    )
                await asyncio.sleep(FETCH_ERROR_PAUSE)
                continue
            if self._redis_down_since is not None:
                log.info("Redis is back after %.1f s", loop.time() - self._redis_down_since)
                self._redis_down_since = None
                try:
                    await self.fetch.reconcile(list(self.running.values()))
                except Exception as error:
                    log.error("could not reconcile the working lists: %s", error)
            if self.quieted.is_set():  # taken after quiet: back to the queue, as Sidekiq does
                await self.fetch.requeue(units)
                break
            for unit in units:
                task = loop.create_task(self.processor.process(unit))
                self.running[task] = unit
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error while running a job", exc_info=task.exception())

    def quiet(self) -> None:
        if not self.quieted.is_set():
            self.quieted.set()
            self._slot_freed.set()
            self._wake = asyncio.get_running_loop().create_task(self._wake_fetch())

    async def _wake_fetch(self) -> None:
        try:
            await self.fetch.wake()
        except Exception as error:  # the fetch then ends at its timeout instead
            log.debug("could not unblock the fetch: %s", error)

    async def stop(self, deadline: float) -> list[UnitOfWork]:
        """Wait for running jobs until ``deadline`` (loop time); then requeue and cancel the
        rest (they leave ``running`` once they have ended). Returns the jobs pushed back."""
        self.quiet()
        loop = asyncio.get_running_loop()
        if self.running:
            log.info(
                "waiting up to %.1f s for %d busy jobs",
                max(0.0, deadline - loop.time()),
                len(self.running),
            )
            await asyncio.wait(list(self.running), timeout=max(0.0, deadline - loop.time()))
        unfinished = dict(self.running)
        if not unfinished:
            return []
        units = list(unfinished.values())
        log.warning("pushing %d unfinished jobs back to their queues", len(units))
        # Requeue first, then cancel: a crash in between runs a job twice, never zero times.
        try:
            await self.fetch.requeue(units)
        except Exception as error:
            log.error(
                "could not push %d jobs back (%s)%s",
                len(units),
                error,
                "; recovery will" if self.fetch.reliable else "; they are lost",
            )
        for task in unfinished:
            task.cancel()
        return units
