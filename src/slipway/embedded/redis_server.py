"""A private redis-server: the one `slipwayd up` starts, and the one tests start.

Never the machine's shared Redis: it binds to loopback on its own port and keeps its files in
its own directory, so several instances can run side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from slipway.embedded.supervisor import Service, ServiceError


def redis_argv(directory: Path, *, port: int = 0, persist: bool) -> list[str]:
    """Listen on loopback ``port``, or only on ``directory/redis.sock`` when port is 0."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise ServiceError("redis-server is not installed (Debian package: redis-server)")
    argv = [
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if port == 0:
        argv += ["--unixsocket", str(directory / "redis.sock"), "--unixsocketperm", "700"]
    if persist:
        argv += ["--appendonly", "yes", "--save", "3600 1 300 100 60 10000"]
    else:
        argv += ["--appendonly", "no", "--save", ""]
    return argv


def answers_ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def redis_service(directory: Path) -> Service:
    """The platform's Redis: persistent, reachable only through a socket in ``directory``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = f"unix://{directory / 'redis.sock'}"
    return Service(
        name="redis",
        argv=redis_argv(directory, persist=True),
        listens=url,
        ready=lambda: answers_ping(url),
        log_path=str(directory / "redis.log"),
    )
