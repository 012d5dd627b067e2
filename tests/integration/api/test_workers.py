"""`slipwayd api` with several workers on one socket: they all serve, their metrics are
counted once, the worker count is checked, and their metrics
directory does not outlive them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from slipway.host.ports import free_port
from tests.control_support import INTERNAL_SECRET
from tests.integration.api.test_api_hardening import SLIPWAYD, slipwayd_api, slipwayd_env
from tests.services import wait_until

CLIENTS = 60


def established(pid: int, port: int) -> int:
    """Connections to the API's port that this worker holds."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def test_both_workers_serve_and_their_requests_are_counted_once(tmp_path: Path) -> None:
    with slipwayd_api(tmp_path, api_workers="2") as api:
        workers = [child.pid for child in psutil.Process(api.process.pid).children()]
        assert len(workers) == 2
        held = [api.connect() for _ in range(CLIENTS)]
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
            assert all(sock.recv(65536).startswith(b"HTTP/1.1 200 ") for sock in held)
            shares = [established(pid, api.port) for pid in workers]
        finally:
            for sock in held:
                sock.close()
        assert sum(shares) == CLIENTS
        assert min(shares) > 0, shares  # both served (the share per wake-up: a unit test)
        metrics = httpx.get(
            f"{api.url}/metrics", headers={"Authorization": f"Bearer {INTERNAL_SECRET}"}
        ).text
    healthz = r'requests_total\{method="GET",route="/healthz",status="200"\} (\S+)'
    counted = re.search(healthz, metrics)
    assert counted and float(counted.group(1)) >= CLIENTS  # both workers' (plus readiness polls)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--workers", "0"], {}, "Invalid value for '-w' / '--workers'"),
        (["--workers", "65"], {}, "Invalid value for '-w' / '--workers'"),
        (["--workers", "two"], {}, "Invalid value for '-w' / '--workers'"),
        ([], {"api_workers": "0"}, "api_workers"),
        ([], {"api_workers": "many"}, "api_workers"),
    ],
)
def test_a_bad_worker_count_is_refused(
    tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    result = subprocess.run(
        [str(SLIPWAYD), "api", *argv],
        env=slipwayd_env(tmp_path / "data", free_port(), internal_secret=INTERNAL_SECRET, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "data" / "api.pid").exists()


def test_the_metrics_directory_goes_with_the_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stale = data / "api-metrics.4194304"  # above Linux's pid_max: no such process
    stale.mkdir(parents=True)
    (stale / "counter_4194304.db").write_bytes(b"left by a killed API")
    with slipwayd_api(tmp_path, api_workers="3") as api:
        manager = psutil.Process(api.process.pid)
        assert len(manager.children()) == 3
        assert not stale.exists()
        assert [path.name for path in data.glob("api-metrics.*")] == [f"api-metrics.{manager.pid}"]
        os.kill(manager.pid, signal.SIGTERM)
        assert api.process.wait(30) == 0
    assert list(data.glob("api-metrics.*")) == []
    wait_until(lambda: not (data / "api.pid").exists(), 5, "the PID file removed")
