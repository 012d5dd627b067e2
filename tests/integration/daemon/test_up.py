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

from slipway.host.ports import free_port, port_open
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
    env["SLIPWAY_ROUTER_PORT"] = str(free_port())
    env["SLIPWAY_ROUTER_HTTPS_PORT"] = str(free_port())
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
    assert "worker   jobs of the queue repos-local" in banner
    assert "runner   deploys from the queue runner-local" in banner
    assert "router   http://127.0.0.1:" in banner
    assert "apps at http://APP.localhost:" in banner
    host_key = (data_dir / "gateway" / "ssh_host_ed25519_key.pub").read_text().split()
    assert f"[127.0.0.1]:{up.ssh_port} {host_key[0]} {host_key[1]}   # SHA256:" in banner
    assert f'export PATH="{Path(sys.executable).parent}:$PATH"' in banner
    assert redis.Redis(unix_socket_path=str(socket_path)).ping()
    assert (socket_path.stat().st_mode & 0o777) == 0o700
    health = httpx.get(f"http://127.0.0.1:{up.http_port}/healthz")
    assert health.json() == {"status": "ok"}
    wait_until(lambda: "GET /healthz" in (data_dir / "api.log").read_text(), 10, "logged")
    assert "/internal/changes" not in (data_dir / "api.log").read_text()  # polls: not logged
    # The secret and the database hold secrets: owner only.
    for private in ("internal_secret", "slipway.db"):
        assert ((data_dir / private).stat().st_mode & 0o077) == 0
    children = _children(process.pid)
    assert sorted(child.name() for child in children)[-1] == "redis-server"
    # redis, the router (HAProxy's master and its worker), worker, runner, gateway, and the
    # API's manager with a worker per CPU
    assert [child.name() for child in children].count("haproxy") == 2
    api = psutil.Process(int((data_dir / "api.pid").read_text()))
    assert len(api.children()) == os.cpu_count()
    assert len(children) == 7 + len(api.children())
    with socket.create_connection(("127.0.0.1", up.ssh_port), timeout=5) as ssh:
        assert ssh.recv(64).startswith(b"SSH-2.0-")

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    assert "Slipway stopped." in process.stdout.read()
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert [p.name for p in data_dir.glob("*.pid")] == []  # no stale PID files


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
        env={
            **os.environ,
            "SLIPWAY_ROUTER_PORT": str(free_port()),
            "SLIPWAY_ROUTER_HTTPS_PORT": str(free_port()),
        },
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


def _up(data_dir: Path, *flags: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env["SLIPWAY_ROUTER_PORT"] = str(free_port())
    env["SLIPWAY_ROUTER_HTTPS_PORT"] = str(free_port())
    return subprocess.Popen(
        [*SLIPWAYD_UP, "--data-dir", str(data_dir), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _admin(data_dir: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "XDG_"))}
    if data_dir is not None:
        env["SLIPWAY_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "slipway.daemon", "admin", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("attempt", range(10))
def test_an_admin_command_the_moment_up_listens(tmp_path: Path, attempt: int) -> None:
    """A script that waits for the port and creates a user at once: no migration race."""
    data_dir, http_port = tmp_path / "data", free_port()
    process = _up(data_dir, "--http-port", str(http_port), "--ssh-port", str(free_port()))
    try:
        wait_until(lambda: port_open("127.0.0.1", http_port), 60, "the API port", process)
        created = _admin(data_dir, "create-user", f"user{attempt}")
        assert created.returncode == 0, created.stderr
        assert created.stdout.startswith("slp_")
        _read_until_running(process)
        assert process.poll() is None, "up must stay alive"
    finally:
        _stop(process)
    assert process.returncode == 0


def test_one_up_per_data_dir(up: Up) -> None:
    _read_until_running(up.process)
    second = _up(up.data_dir, "--http-port", str(free_port()), "--ssh-port", str(free_port()))
    _out, errors = second.communicate(timeout=60)
    assert second.returncode == 1
    assert errors.strip() == (
        f"slipwayd up: slipwayd up is already running on {up.data_dir} (pid {up.process.pid})"
    )
    assert up.process.poll() is None
    assert redis.Redis(unix_socket_path=str(up.data_dir / "redis" / "redis.sock")).ping()


def test_a_taken_port_is_named_with_its_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _up(tmp_path / "data", "--http-port", str(free_port()), "--ssh-port", str(port))
        _out, errors = process.communicate(timeout=60)
    assert process.returncode == 1
    assert (
        f"cannot listen on 127.0.0.1:{port} (--ssh-port / SLIPWAY_SSH_PORT): "
        "Address already in use" in errors
    )


def test_admin_names_its_data_dir_and_never_creates_a_database_silently(tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-the-one"
    refused = _admin(elsewhere, "create-user", "alice")
    assert refused.returncode == 1
    assert f"data dir {elsewhere}" in refused.stderr
    assert f"no Slipway database in {elsewhere}" in refused.stderr
    assert not (elsewhere / "slipway.db").exists()
    # With a database but no `up` on it: it works, and warns.
    migrated = subprocess.run(
        [sys.executable, "-m", "slipway.daemon", "migrate", "--data-dir", str(elsewhere)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    created = _admin(elsewhere, "create-user", "alice")
    assert created.returncode == 0 and created.stdout.startswith("slp_")
    assert f"no `slipwayd up` runs on {elsewhere}" in created.stderr


def test_admin_lists_users_and_issues_tokens(up: Up) -> None:
    _read_until_running(up.process)
    assert _admin(up.data_dir, "create-user", "alice", "--admin").returncode == 0
    assert _admin(up.data_dir, "create-user", "bob").returncode == 0
    listed = _admin(up.data_dir, "users")
    assert listed.returncode == 0
    rows = [line.split()[:3] for line in listed.stdout.splitlines()[1:]]
    assert rows == [["alice", "yes", "1"], ["bob", "no", "1"]]
    assert "no `slipwayd up` runs" not in listed.stderr  # one does
    issued = _admin(up.data_dir, "token", "bob")
    assert issued.returncode == 0 and issued.stdout.startswith("slp_")
    me = httpx.get(
        f"http://127.0.0.1:{up.http_port}/v1/user",
        headers={"Authorization": f"Bearer {issued.stdout.strip()}"},
    )
    assert me.json()["name"] == "bob"
    assert _admin(up.data_dir, "token", "nobody").returncode == 1
