"""Redis add-ons: a redis-server of its own per add-on.

Why not a database number or an ACL user on the platform's Redis: numbers are not a
boundary (any client may SELECT another) and the platform's Redis holds jobs and logs; an
ACL key prefix would make every app rewrite its keys. A server per add-on gives each app
its own password, memory limit (the plan) and files, as the ``redis`` user, on a loopback
port. Its files are in ``ROOT/NAME``; ``slipwayd up`` starts them when it starts, starts
again one that died, and stops them when it stops.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import psutil

from slipway.embedded.redis_server import answers_ping
from slipway.embedded.supervisor import ServiceError
from slipway.host.filelock import exclusive
from slipway.host.ports import free_port

PLANS = {"dev": 64, "standard": 256, "large": 1024}  # maxmemory, MB
DEFAULT_PLAN = "dev"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
LOCK = ".lock"  # in the add-ons' root: making, removing and reviving take turns


def create(root: Path, name: str, plan: str) -> tuple[str, int]:
    """Start a new server; its ``REDIS_URL`` and port."""
    with exclusive(root / LOCK):  # `up` must not start it twice while it is made
        return _create(root / name, plan)


def _create(directory: Path, plan: str) -> tuple[str, int]:
    directory.mkdir(mode=0o700, parents=True)
    password = secrets.token_urlsafe(24)
    port = free_port()
    config = directory / "redis.conf"
    config.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {directory}",
                f"pidfile {directory / 'redis.pid'}",
                f"logfile {directory / 'redis.log'}",
                "daemonize yes",
                f"requirepass {password}",
                f"maxmemory {PLANS[plan]}mb",
                "maxmemory-policy noeviction",
                "appendonly yes",
                "save 3600 1 300 100 60 10000",
                "enable-protected-configs no",  # CONFIG SET dir... would write elsewhere
                "enable-debug-command no",
                "enable-module-command no",
                "",
            ]
        )
    )
    os.chmod(config, 0o600)
    _own(directory)
    _own(config)
    try:
        start(directory)
    except ServiceError:
        _remove(directory)
        raise
    return url_of(directory), port


def url_of(directory: Path) -> str:
    """The server's URL, from its configuration file."""
    config = dict(
        line.split(" ", 1) for line in (directory / "redis.conf").read_text().splitlines() if line
    )
    return f"redis://:{config['requirepass']}@127.0.0.1:{config['port']}/0"


def start(directory: Path) -> bool:
    """Start the server unless it answers already: whether it had to."""
    url = url_of(directory)
    if answers_ping(url):
        return False
    as_redis = ["runuser", "-u", "redis", "--"] if os.geteuid() == 0 else []
    started = subprocess.run(
        [*as_redis, "redis-server", str(directory / "redis.conf")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not answers_ping(url):
        if started.returncode != 0 or time.monotonic() > deadline:
            raise ServiceError(
                f"the Redis add-on {directory.name} did not start; see {directory / 'redis.log'}"
            )
        time.sleep(0.05)
    return True


def revive(directory: Path) -> bool:
    """Start the server again if it died (killed, crashed): whether it had to."""
    with exclusive(directory.parent / LOCK):  # not while it is made or removed
        if _process(directory) is not None or not (directory / "redis.conf").exists():
            return False
        return start(directory)


def stop(directory: Path) -> None:
    """SIGTERM: it saves its data, then exits (SIGKILL after STOP_TIMEOUT)."""
    process = _process(directory)
    if process is None:
        return
    with contextlib.suppress(psutil.Error):
        process.terminate()
        _, alive = psutil.wait_procs([process], STOP_TIMEOUT)
        for left in alive:
            left.kill()


def destroy(root: Path, name: str) -> None:
    with exclusive(root / LOCK):
        _remove(root / name)


def _remove(directory: Path) -> None:
    stop(directory)
    shutil.rmtree(directory, ignore_errors=True)


def servers(root: Path) -> list[Path]:
    return sorted(path.parent for path in root.glob("*/redis.conf"))


def _process(directory: Path) -> psutil.Process | None:
    """The server its pid file names, if that pid is still a redis-server (not reused)."""
    try:
        process = psutil.Process(int((directory / "redis.pid").read_text()))
        return process if "redis-server" in " ".join(process.cmdline()) else None
    except (OSError, ValueError, psutil.Error):
        return None


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam("redis")
        os.chown(path, owner.pw_uid, owner.pw_gid)
