"""An exclusive advisory lock on a file (flock): one holder at a time, the others wait.

The kernel releases it when its holder exits, however it exits, so no stale lock is ever
left behind. Standard library only: git-shell and the hooks use it too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
