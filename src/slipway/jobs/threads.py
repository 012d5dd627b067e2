"""The threads sync jobs run in, so they never block the event loop.

A plain executor wakes the event loop once per finished job (a write to its self-pipe), and
those wake-ups, not the jobs, were most of the cost of a short job. Here threads take work
from one queue and hand results back in batches: one wake-up serves every job that finished
since the last one. The threads are daemons: a job hanging past the shutdown timeout (it was
pushed back to its queue) cannot keep the process alive.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from collections.abc import Callable
from typing import Any

_Item = tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class JobThreads:
    def __init__(self, size: int) -> None:
        self.size = size
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]]
        self._finished = collections.deque()
        self._delivery_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for number in range(self.size):
            thread = threading.Thread(target=self._serve, name=f"job-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in a thread; its result, or its exception raised here."""
        assert self._loop is not None, "JobThreads.start was not called"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._work.put((future, function, args))
        return await future

    def stop(self) -> None:
        """Let idle threads exit; a thread still running a job is left to the process exit."""
        for _ in self._threads:
            self._work.put(None)

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, function, args = item
            try:
                self._finished.append((future, function(*args), None))
            except BaseException as error:  # the job's failure, handed to the loop
                self._finished.append((future, None, error))
            if not self._delivery_scheduled:
                self._delivery_scheduled = True
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: the process is exiting
                    return

    def _deliver(self) -> None:
        self._delivery_scheduled = False
        while self._finished:
            future, result, error = self._finished.popleft()
            if future.cancelled():  # a hard shutdown gave up on this job
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
