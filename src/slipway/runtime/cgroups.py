"""Memory limits for instances, through cgroups where the runner may write them: v2's
unified hierarchy, or v1's memory controller (detected when the runner starts). An
unprivileged runner, or a host without them, runs instances without a memory limit.

Each instance gets a group of its own, ``.../slipway/<data dir digest>/<app>-<instance>``:
two platforms on one host (tests, a staging copy) never share one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("slipway.runtime")

SIZES = {"S": 256, "M": 512, "L": 1024, "XL": 2048}  # MB of memory, like Scalingo's
CGROUPS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Group:
    """One instance's cgroup."""

    path: Path
    version: int
    limit_mb: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in self.procs.read_text().split()]
        except (OSError, ValueError):
            return []

    def oom_kills(self) -> int:
        """How many of its processes the kernel killed for going over the limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def memory(self) -> tuple[int, int]:
        """Bytes in use now, and at most since it started."""
        names = (
            ("memory.current", "memory.peak")
            if self.version == 2
            else ("memory.usage_in_bytes", "memory.max_usage_in_bytes")
        )
        values = []
        for name in names:
            try:
                values.append(int((self.path / name).read_text()))
            except (OSError, ValueError):
                values.append(0)
        return values[0], values[1]

    def remove(self) -> None:
        """Once its processes are gone (a group with processes stays)."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


@dataclass(frozen=True)
class Cgroups:
    """Where this runner makes its instances' groups."""

    root: Path
    version: int

    @classmethod
    def detect(cls, data_dir: Path) -> Cgroups | None:
        """Ours, made if need be; None where cgroups cannot be written (says why once)."""
        digest = _digest(data_dir)
        if (CGROUPS / "cgroup.controllers").exists():
            version, base = 2, CGROUPS
        elif (CGROUPS / "memory").is_dir():
            version, base = 1, CGROUPS / "memory"
        else:
            log.warning("no memory cgroup on this host: instances run without a memory limit")
            return None
        try:
            ours = _mkdir(base / "slipway")
            if version == 2:
                _enable_memory(base)
                _enable_memory(ours)
            root = _mkdir(ours / digest)
            if version == 2:
                _enable_memory(root)
        except OSError as error:
            log.warning("cannot use cgroups (%s): instances run without a memory limit", error)
            return None
        return cls(root, version)

    def create(self, name: str, limit_mb: int) -> Group:
        """A group for one instance (emptied of settings if it was there)."""
        path = _mkdir(self.root / name)
        limit = str(limit_mb * 1024 * 1024)
        if self.version == 2:
            (path / "memory.max").write_text(limit)
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # not there without swap accounting
                (path / "memory.memsw.limit_in_bytes").write_text(limit)
        return Group(path, self.version, limit_mb)


def remove_ours(data_dir: Path) -> None:
    """The platform stops: its (empty) cgroups directory goes."""
    for base in (CGROUPS, CGROUPS / "memory"):
        with contextlib.suppress(OSError):
            (base / "slipway" / _digest(data_dir)).rmdir()


def _digest(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def _mkdir(path: Path) -> Path:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    return path


def _enable_memory(group: Path) -> None:
    """v2: let the group's children have memory limits."""
    control = group / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")
