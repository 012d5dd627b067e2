"""Python jobs: the ``@job`` decorator, the registry the worker resolves ``class`` with, and
``require`` for ``-r MODULE_OR_FILE``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from slipway.jobs.client import Client

# Answers of a ``retry_in`` hook besides a number of seconds (Sidekiq 6.5.2+).
DISCARD = "discard"
KILL = "kill"

RetryIn = Callable[[int, BaseException], "int | float | str | None"]
RetriesExhausted = Callable[[dict[str, Any], BaseException], Any]

_registry: dict[str, JobFunction] = {}
_default_client: Client | None = None


def configure(redis_url: str | None = None, namespace: str | None = None) -> None:
    """Where ``.enqueue`` of decorated jobs pushes to (default: ``REDIS_URL``, no namespace)."""
    global _default_client
    if _default_client is not None:
        _default_client.close()
    _default_client = Client(redis_url, namespace)


def default_client() -> Client:
    global _default_client
    if _default_client is None:
        _default_client = Client()
    return _default_client


class JobFunction:
    """A registered job: call it directly to run it now, or ``.enqueue`` it for a worker."""

    def __init__(
        self,
        function: Callable[..., Any],
        name: str,
        queue: str,
        retry: bool | int,
        retry_in: RetryIn | None,
        retries_exhausted: RetriesExhausted | None,
        options: dict[str, Any],
    ) -> None:
        self.function = function
        self.name = name
        self.queue = queue
        self.retry = retry
        self.retry_in = retry_in
        self.retries_exhausted = retries_exhausted
        self.options = options
        self.is_async = inspect.iscoroutinefunction(function)
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", name)
        self.__wrapped__ = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def _options(self) -> dict[str, Any]:
        return {"retry": self.retry, **self.options}

    def enqueue(self, *args: Any) -> str:
        return default_client().enqueue(self.queue, self.name, list(args), **self._options())

    def enqueue_in(self, seconds: float, *args: Any) -> str:
        return default_client().enqueue_in(
            self.queue, self.name, seconds, list(args), **self._options()
        )

    def enqueue_at(self, at: float | datetime, *args: Any) -> str:
        return default_client().enqueue_at(self.queue, self.name, at, list(args), **self._options())

    def __repr__(self) -> str:
        return f"<job {self.name} queue={self.queue}>"


def job(
    name: str | None = None,
    queue: str = "default",
    retry: bool | int = True,
    *,
    retry_in: RetryIn | None = None,
    retries_exhausted: RetriesExhausted | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], JobFunction]:
    """Register a sync or async function as the job ``name`` (default: its ``__name__``).

    ``retry`` is True (25 retries), False (no retry, no dead set) or N retries. ``retry_in``
    (count, exception) may return seconds, ``"discard"`` or ``"kill"``; ``retries_exhausted``
    (job, exception) runs before the job goes to the dead set. Other options (``backtrace``,
    ``dead``, ``retry_queue``, ``tags``...) are written into each payload, as
    ``sidekiq_options`` are.
    """
    if not isinstance(retry, bool | int):
        raise TypeError(f"retry must be a bool or an int, not {retry!r}")

    def register(function: Callable[..., Any]) -> JobFunction:
        job_name = name or function.__name__
        registered = JobFunction(
            function, job_name, queue, retry, retry_in, retries_exhausted, options
        )
        previous = _registry.get(job_name)
        if previous is not None and previous.function is not function:
            raise ValueError(
                f"a job named {job_name!r} is already registered "
                f"({previous.function.__module__}.{previous.__name__})"
            )
        _registry[job_name] = registered
        return registered

    return register


def lookup(name: str) -> JobFunction | None:
    return _registry.get(name)


def registered() -> dict[str, JobFunction]:
    return dict(_registry)


def require(target: str) -> None:
    """Import a module by dotted name, or a ``.py`` file by path, so its jobs register."""
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {target}")
        # As when running the file as a script: its directory is importable.
        sys.path.insert(0, str(path.resolve().parent))
        module_name = f"slipway_jobs_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)
