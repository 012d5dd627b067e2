"""Run a tree of child processes in the foreground and stop all of them together.

`slipwayd up` is the embedded platform: each part is a child process. Children run in their
own session so that a Ctrl-C reaches only the supervisor, which then stops them in reverse
order; each child is also told by the kernel to exit if the supervisor dies, so nothing is
left behind even after a SIGKILL.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the supervisor exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with losing a race)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServiceError(RuntimeError):
    """A child process failed to start or become ready."""


@dataclass
class Service:
    """One child process: how to start it, how to know it is ready, where it listens."""

    name: str
    argv: Sequence[str]
    listens: str
    ready: Callable[[], bool]
    env: dict[str, str] | None = None
    log_path: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        """None while running (or before start)."""
        return self.process.poll() if self.process else None

    def start(self, timeout: float = 15.0) -> None:
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with status {self.process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} was not ready after {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Starts services in order, watches them, and stops them in reverse order."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self._stopping = False

    def start(self) -> None:
        started: list[Service] = []
        try:
            for service in self.services:
                service.start()
                started.append(service)
        except BaseException:
            for service in reversed(started):
                service.stop()
            raise

    def wait(self) -> Service | None:
        """Block until SIGINT/SIGTERM (returns None) or a child exits (returns it)."""

        def request_stop(signum: int, frame: object) -> None:
            self._stopping = True

        previous = {
            sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while not self._stopping:
                for service in self.services:
                    if service.returncode is not None:
                        return service
                time.sleep(0.2)
            return None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
