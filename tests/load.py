"""Clients in threads repeating one action until told to stop; every failure is kept."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Load:
    def __init__(self, action: Callable[[], Any], threads: int = 4) -> None:
        self.action = action
        self.results: list[Any] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.results.append(self.action())
            except Exception as error:
                self.failures.append(repr(error))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
