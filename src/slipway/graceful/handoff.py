"""Handing listening sockets to a successor, and its readiness back.

The successor finds its sockets in ``SLIPWAY_LISTEN_FDS`` (``name:fd,...``: the fds keep
their numbers across exec) or in systemd's ``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``,
and says it is ready by writing one byte to the pipe in ``SLIPWAY_READY_FD`` (and ``READY=1``
with ``MAINPID=`` to ``NOTIFY_SOCKET``).
"""

from __future__ import annotations

import functools
import logging
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger("slipway.graceful")

FDS_VARIABLE = "SLIPWAY_LISTEN_FDS"
READY_VARIABLE = "SLIPWAY_READY_FD"
SYSTEMD_FIRST_FD = 3
READY_BYTE = b"R"
STOP_GRACE = 10.0  # seconds a new version that failed its start gets to finish what it took


class UpgradeFailed(Exception):
    """The successor crashed or did not get ready in time; it was stopped."""


def listen(host: str, port: int) -> socket.socket:
    """A new listening TCP socket (a successor inherits it instead of making its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not left as 0: only then does asyncio turn Nagle's algorithm off on
    # what it accepts (an inherited socket reports its protocol, a new one did not).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    return sock


@functools.cache
def inherited_sockets() -> dict[str, socket.socket]:
    """Listening sockets handed to this process, by name (empty when started afresh).

    The same dict on every call: each part of a process takes its own (the runner's server
    and its router log), and a socket a part adds is passed on at the next upgrade too.
    """
    return _take_inherited_sockets()


def _take_inherited_sockets() -> dict[str, socket.socket]:
    sockets: dict[str, socket.socket] = {}
    ours = os.environ.pop(FDS_VARIABLE, "")
    for item in filter(None, ours.split(",")):
        name, _, number = item.partition(":")
        sockets[name] = socket.socket(fileno=int(number))
    if os.environ.get("LISTEN_PID") == str(os.getpid()):  # systemd socket activation
        count = int(os.environ.get("LISTEN_FDS", "0"))
        names = os.environ.get("LISTEN_FDNAMES", "").split(":")
        for index in range(count):
            fd = SYSTEMD_FIRST_FD + index
            name = names[index] if index < len(names) and names[index] else f"fd{fd}"
            sockets[name] = socket.socket(fileno=fd)
        for variable in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(variable, None)
    for sock in sockets.values():
        sock.set_inheritable(False)  # passed on only on purpose, to a successor
    return sockets


def ready(pid_file: Path | None = None) -> None:
    """Tell whoever started us that we serve: the ready pipe, systemd, the PID file."""
    if pid_file is not None:
        write_pid_file(pid_file)
    ready_fd = os.environ.pop(READY_VARIABLE, None)
    if ready_fd is not None:
        try:
            os.write(int(ready_fd), READY_BYTE)
        finally:
            os.close(int(ready_fd))
    notify(f"READY=1\nMAINPID={os.getpid()}")


def write_pid_file(path: Path) -> None:
    """Replace the PID file atomically: readers see the old PID or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{os.getpid()}\n")
    os.replace(temporary, path)


def notify(message: str) -> None:
    """sd_notify: a datagram to NOTIFY_SOCKET, when systemd runs us."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # the abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as error:
            log.warning("could not notify systemd: %s", error)


@dataclass
class Successor:
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


def spawn_successor(
    argv: Sequence[str],
    sockets: Mapping[str, socket.socket],
    timeout: float,
    env: Mapping[str, str] | None = None,
    output: int | IO[bytes] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    new_session: bool = False,
) -> Successor:
    """Start ``argv`` with ``sockets`` inherited; return once it is ready.

    UpgradeFailed (after killing it) if it exits first or is not ready within ``timeout``.
    ``output`` receives its stdout and stderr (default: ours).
    """
    read_end, write_end = os.pipe()
    fds = {name: sock.fileno() for name, sock in sockets.items()}
    child_env = dict(os.environ if env is None else env)
    child_env[FDS_VARIABLE] = ",".join(f"{name}:{fd}" for name, fd in fds.items())
    child_env[READY_VARIABLE] = str(write_end)
    for variable in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        child_env.pop(variable, None)
    try:
        process = subprocess.Popen(
            list(argv),
            env=child_env,
            pass_fds=(*fds.values(), write_end),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            preexec_fn=preexec_fn,
            start_new_session=new_session,
        )
    except OSError as error:
        os.close(read_end)
        os.close(write_end)
        raise UpgradeFailed(f"cannot start {argv[0]}: {error}") from error
    os.close(write_end)
    try:
        _wait_ready(process, read_end, timeout)
    except UpgradeFailed:
        _stop(process)
        raise
    finally:
        os.close(read_end)
    return Successor(process)


def _wait_ready(process: subprocess.Popen[bytes], read_end: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        # At the deadline, one last look that does not wait: a byte that came in meanwhile
        # means a process that serves already, and killing it would cut what it accepted.
        readable, _, _ = select.select([read_end], [], [], min(max(remaining, 0), 0.5))
        if readable:
            if os.read(read_end, 1) == READY_BYTE:
                return
            # The pipe closed without a byte: the new process exited (or closed it).
            code = process.wait(5)
            raise UpgradeFailed(
                f"the new process (pid {process.pid}) exited with status {code} before it was ready"
            )
        if process.poll() is not None:
            raise UpgradeFailed(
                f"the new process (pid {process.pid}) exited with status "
                f"{process.returncode} before it was ready"
            )
        if remaining <= 0:
            raise UpgradeFailed(
                f"the new process (pid {process.pid}) was not ready after {timeout:.0f} s"
            )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a new version that will not serve. TERM first: a server may accept a connection
    just before it says it is ready, and stopping by TERM lets it finish that; KILL if TERM
    is not enough."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
