"""`slipwayd up` starts what exists, says where it listens, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from slipway.supervisor import free_port
from tests.services import wait_until

SLIPWAYD_UP = [sys.executable, "-c", "from slipway.daemon import app; app()", "up"]


@dataclass
class Up:
    process: subprocess.Popen[str]
    data_dir: Path
    http_port: int
    ssh_port: int


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    data_dir = tmp_path / "data"
    http_port, ssh_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    process = subprocess.Popen(
        [
            *SLIPWAYD_UP,
            "--data-dir",
            str(data_dir),
            "--http-port",
            str(http_port),
            "--ssh-port",
            str(ssh_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield Up(process, data_dir, http_port, ssh_port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _read_until_running(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    assert process.stderr is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("  5."):
            return "".join(lines)
    raise AssertionError("up exited early: " + "".join(lines) + process.stderr.read())


def _children(pid: int) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
    return children


def test_up_starts_redis_and_the_api_and_stops_everything_on_ctrl_c(up: Up) -> None:
    process, data_dir = up.process, up.data_dir
    banner = _read_until_running(process)
    socket_path = data_dir / "redis" / "redis.sock"
    assert f"redis    unix://{socket_path}" in banner
    assert f"api      http://127.0.0.1:{up.http_port}" in banner
    assert f"gateway  ssh://git@127.0.0.1:{up.ssh_port}" in banner
    assert "runner   app runner and router" in banner  # listed as not started
    assert "Not started, not built yet:" in banner
    assert redis.Redis(unix_socket_path=str(socket_path)).ping()
    assert (socket_path.stat().st_mode & 0o777) == 0o700
    health = httpx.get(f"http://127.0.0.1:{up.http_port}/healthz")
    assert health.json() == {"status": "ok"}
    # The secret and the database hold secrets: owner only.
    for private in ("internal_secret", "slipway.db"):
        assert ((data_dir / private).stat().st_mode & 0o077) == 0
    children = _children(process.pid)
    assert sorted(child.name() for child in children)[-1] == "redis-server"
    assert len(children) == 3  # redis, api, gateway
    with socket.create_connection(("127.0.0.1", up.ssh_port), timeout=5) as ssh:
        assert ssh.recv(64).startswith(b"SSH-2.0-")

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    assert "Slipway stopped." in process.stdout.read()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_children_die_with_up_even_when_it_is_killed(up: Up) -> None:
    process = up.process
    _read_until_running(process)
    children = _children(process.pid)
    assert children
    process.kill()
    process.wait()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_up_reports_a_child_that_cannot_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "redis").mkdir(parents=True)
    # A directory where the socket must go makes redis-server fail at start.
    (data_dir / "redis" / "redis.sock").mkdir()
    result = subprocess.run(
        [
            *SLIPWAYD_UP,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("slipwayd up: redis exited with status")
    wait_until(
        lambda: (
            not any(
                p.info["name"] == "redis-server"
                and str(data_dir) in " ".join(p.info["cmdline"] or [])
                for p in psutil.process_iter(["name", "cmdline"])
            )
        ),
        5,
        "no leftover redis-server",
    )
