"""What a runner runs, on disk (``DATA_DIR/runner/state.json``, 0600: it holds the apps'
config): the release of each app and its instances' processes, and how far their logs are
shipped. A new runner adopts the instances of the one it replaces (an upgrade, a crash)
instead of restarting them; ``slipwayd up`` stops them when the platform stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class InstanceRecord:
    app_uid: str
    version: int
    kind: str
    index: int
    command: str
    port: int
    pid: int
    started_at: float  # the process's start (psutil's create_time): a reused pid is not it
    restarts: int
    state: str
    group: str | None  # its cgroup's path
    log_offsets: dict[str, int]  # file → bytes shipped

    def process(self) -> psutil.Process | None:
        """Its process, if it still runs."""
        return still_running(self.pid, self.started_at)


def still_running(pid: int, started_at: float) -> psutil.Process | None:
    """Process ``pid`` if it runs and is the one that started at ``started_at`` (psutil's
    create_time), not another that reused its pid."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started_at) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


@dataclass(frozen=True)
class RunnerState:
    releases: dict[str, dict[str, Any]]  # app uid → its release (as Release's fields)
    directories: dict[str, str]  # app uid → where that release is unpacked
    instances: list[InstanceRecord]


def save(path: Path, state: RunnerState) -> None:
    temporary = path.with_suffix(".tmp")
    data = json.dumps(
        {
            "releases": state.releases,
            "directories": state.directories,
            "instances": [asdict(record) for record in state.instances],
        }
    )
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.write(data)
    os.replace(temporary, path)


def load(path: Path) -> RunnerState:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return RunnerState({}, {}, [])
    return RunnerState(
        data["releases"],
        data["directories"],
        [InstanceRecord(**record) for record in data["instances"]],
    )


def stop_all(path: Path, timeout: float = 10.0) -> int:
    """Stop every instance the state names, as the platform stops; how many ran."""
    count = stop_all_of(load(path).instances, timeout)
    path.unlink(missing_ok=True)
    return count


def stop_all_of(records: list[InstanceRecord], timeout: float) -> int:
    """SIGTERM to each one's process group, SIGKILL after ``timeout``; their cgroups go."""
    running = [p for p in (r.process() for r in records) if p is not None]
    for process in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(running, timeout)
    for process in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    psutil.wait_procs(alive, 5)
    for record in records:
        if record.group is not None:
            with contextlib.suppress(OSError):
                os.rmdir(record.group)
    return len(running)
