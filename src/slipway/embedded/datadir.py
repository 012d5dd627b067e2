"""One `slipwayd up` per data dir: it holds a lock on ``DATA_DIR/up.lock`` while it runs.

The lock is an flock, so the kernel releases it when the process dies, even by SIGKILL: a
stale file never blocks the next start. The file holds the pid, for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "up.lock"


class AlreadyRunning(Exception):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.pid = pid
        running = f" (pid {pid})" if pid else ""
        super().__init__(f"slipwayd up is already running on {data_dir}{running}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Hold the data dir, or AlreadyRunning naming who holds it."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise AlreadyRunning(self.data_dir, _read_pid(self.path)) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)
            self._descriptor = None


def running_up(data_dir: Path) -> int | None:
    """The pid of the `slipwayd up` holding ``data_dir``, 0 if one holds it but its pid is
    unknown, or None when none runs there."""
    path = data_dir / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or 0
    finally:
        os.close(descriptor)
    return None
