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

from slipway.appuser import AppUser, run_as
from slipway.builder.gitshell import SAFE_PATH

# Sourced before the command, as on Heroku: buildpacks put PATH and the like there.
PROFILE = 'for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; '


@dataclass
class Instance:
    app: str
    app_uid: str
    version: int
    kind: str  # the process type: web, worker...
    index: int
    command: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    state: str = "starting"  # starting, up, crashed, stopping
    restarts: int = 0
    started_at: float = field(default_factory=time.time)

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

    def start(self, directory: Path, env: dict[str, str], user: AppUser | None, logs: Path) -> None:
        """Run it; its output goes to ``logs`` + ``.stdout`` and ``.stderr``."""
        with (
            open(logs.with_name(logs.name + ".stdout"), "ab") as stdout,
            open(logs.with_name(logs.name + ".stderr"), "ab") as stderr,
        ):
            self.process = subprocess.Popen(
                ["/bin/bash", "-c", PROFILE + self.command],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                umask=0o077,
                **run_as(user),
            )
        self.state = "starting"
        self.started_at = time.time()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def exit_description(self) -> str:
        code = self.process.returncode if self.process else None
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"
