"""One running process of an app: ``web.1`` of release v3, on its own PORT, as the app's
user, in a session of its own (so that it and its children stop together)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from slipway.builder.gitshell import SAFE_PATH
from slipway.host.appuser import AppUser
from slipway.runtime.cgroups import Group

# Sourced before the command, as on Heroku: buildpacks put PATH and the like there.
PROFILE = 'for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; '
# Puts itself in the instance's cgroup ($1) and sets its limits while it may, then becomes
# the command (as the app's user, through setpriv, when the runner is root). A limit the
# host already holds lower stays lower.
LAUNCH = (
    'if [ -n "$1" ]; then echo $$ > "$1" || exit 126; fi; '
    'ulimit -n "$2" 2>/dev/null; ulimit -u "$3" 2>/dev/null; shift 3; exec "$@"'
)
MAX_FILES = 10_000  # open files per process (Heroku's figure)
MAX_PROCESSES = 2_048  # processes and threads of the app's user
OOM_EXIT_WAIT = 1.0  # seconds a process killed over the memory limit may take to exit


def launcher(command: str, user: AppUser | None, group: Group | None) -> list[str]:
    """The argv that runs ``command`` in ``group``, with limits, as ``user``."""
    become = (
        ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--"]
        if user is not None
        else []
    )
    procs = str(group.procs) if group is not None else ""
    return [
        *("/bin/bash", "-c", LAUNCH, "slipway-launch", procs),
        *(str(MAX_FILES), str(MAX_PROCESSES)),
        *become,
        *("/bin/bash", "-c", PROFILE + command),
    ]


@dataclass
class Instance:
    app: str
    app_uid: str
    version: int
    kind: str  # the process type: web, worker...
    index: int
    command: str
    port: int
    # Its process: a psutil.Popen when this runner started it, a psutil.Process when it
    # was adopted from the runner before (its exit status is then unknown).
    process: psutil.Process | None = None
    state: str = "starting"  # starting, up, crashed, stopping
    restarts: int = 0
    started_at: float = field(default_factory=time.time)
    group: Group | None = None  # its cgroup, when it has a memory limit
    oom_kills: int = 0  # its group's count of processes killed over the limit, known so far
    last_exit: str | None = None  # how it ended last (it crashed)

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.index}"

    @property
    def server(self) -> str:
        """Its name in the router, and its files' names: unique across the app's releases
        and restarts (no two instances share a PORT)."""
        return f"{self.kind}-{self.index}-{self.port}"

    def environment(self, config: dict[str, str], commit: str, directory: Path) -> dict[str, str]:
        return {
            **config,
            "PATH": SAFE_PATH,
            "HOME": str(directory),
            "LANG": config.get("LANG", "C.UTF-8"),
            "PORT": str(self.port),
            "DYNO": self.name,
            "CONTAINER": f"{self.kind}-{self.index}",
            "SOURCE_VERSION": commit,
            "CONTAINER_VERSION": commit,
            "PYTHONUNBUFFERED": "1",
            "APP": self.app,
        }

    def start(
        self,
        directory: Path,
        env: dict[str, str],
        user: AppUser | None,
        logs: Path,
        group: Group | None = None,
    ) -> None:
        """Run it, in ``group``; its output goes to ``logs`` + ``.stdout`` and ``.stderr``."""
        self.group = group
        self.oom_kills = group.oom_kills() if group is not None else 0
        with (
            open(logs.with_name(logs.name + ".stdout"), "ab") as stdout,
            open(logs.with_name(logs.name + ".stderr"), "ab") as stderr,
        ):
            self.process = psutil.Popen(
                launcher(self.command, user, group),
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                umask=0o077,
            )
        self.state = "starting"
        self.started_at = time.time()

    @property
    def alive(self) -> bool:
        if isinstance(self.process, psutil.Popen):
            return self.process.poll() is None  # and reaps it when it has exited
        try:
            return self.process is not None and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def listening(self) -> bool:
        """Ready: a TCP connection to its PORT succeeds (Heroku and Scalingo's test)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float) -> None:
        """SIGTERM to its process group, SIGKILL after ``timeout`` seconds."""
        if self.process is None:
            return
        self.state = "stopping"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(psutil.TimeoutExpired):
            self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.TimeoutExpired):
            self.process.wait(10)
        if self.group is not None:  # and what left its session (a daemon...)
            for pid in self.group.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def new_oom_kills(self) -> int:
        """Processes the kernel killed over the memory limit since the last call."""
        if self.group is None:
            return 0
        seen, self.oom_kills = self.oom_kills, self.group.oom_kills()
        return self.oom_kills - seen

    def child_oom_killed(self) -> bool:
        """Whether the kernel killed one of its processes over the memory limit, itself
        still running. The count goes up as the kill starts, while the killed process may
        take a moment to exit: if that is the instance itself, the count is left for
        exit_description."""
        if self.group is None or self.group.oom_kills() == self.oom_kills:
            return False
        deadline = time.monotonic() + OOM_EXIT_WAIT
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.alive and self.new_oom_kills() > 0

    def exit_description(self) -> str:
        if self.new_oom_kills() and self.group is not None:
            return f"killed: over its memory limit ({self.group.limit_mb} MB)"
        if not isinstance(self.process, psutil.Popen):
            return "exited (a previous runner started it: its status is unknown)"
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"
