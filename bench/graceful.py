"""Upgrading servers under load, against what peers do, in one run.

- SSH: the gateway upgraded with SIGHUP (a new version takes over its listening socket)
  against OpenSSH's sshd, which re-executes itself on SIGHUP and closes its listening socket
  meanwhile.
- HTTP: `slipwayd api` upgraded with SIGHUP against the same API stopped and started again
  (a plain restart, as with uvicorn or before slipway.graceful).

Clients open new connections in a loop (SSH: up to the server's version line; HTTP:
GET /healthz) while each server is upgraded --upgrades times. Reported: connections attempted
and failed, the median and longest connection (the longest is the longest pause in
accepting), and the time from the signal to the new version serving.

    .venv/bin/python bench/graceful.py [--upgrades 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.load import Load  # noqa: E402
from tests.services import Sshd, exited, stop_process, wait_until  # noqa: E402

from slipway.host.ports import free_port, port_open  # noqa: E402

SLIPWAYD = [sys.executable, "-m", "slipway.daemon"]
PAUSE = 1.0  # seconds of load between upgrades


@dataclass
class Figures:
    attempts: int
    failed: int
    median_ms: float
    longest_ms: float
    to_serving_s: float

    def row(self, name: str) -> str:
        return (
            f"  {name:<28} {self.attempts:>8} {self.failed:>7} {self.median_ms:>8.2f}"
            f" {self.longest_ms:>11.1f} {self.to_serving_s:>16.2f}"
        )


HEADER = (
    f"  {'':<28} {'attempts':>8} {'failed':>7} {'p50 ms':>8} {'longest ms':>11}"
    f" {'signal→serving s':>16}"
)


def timed(probe: Callable[[], None]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        probe()
        return (time.perf_counter() - started) * 1000

    return run


def ssh_banner(port: int) -> Callable[[], None]:
    def probe() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            if not sock.recv(64).startswith(b"SSH-2.0-"):
                raise ConnectionError("no SSH version line")

    return probe


def http_health(port: int) -> Callable[[], None]:
    # One client for its pool of settings, but a new connection for every request.
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=10, headers={"Connection": "close"}
    )

    def probe() -> None:
        client.get("/healthz").raise_for_status()

    return probe


def under_load(
    probe: Callable[[], None], upgrade: Callable[[], float], upgrades: int, clients: int
) -> Figures:
    """Run ``upgrade`` (which returns its signal→serving time) ``upgrades`` times under load."""
    durations = []
    with Load(timed(probe), threads=clients) as load:
        for _ in range(upgrades):
            time.sleep(PAUSE)
            durations.append(upgrade())
        time.sleep(PAUSE)
    return Figures(
        attempts=len(load.results) + len(load.failures),
        failed=len(load.failures),
        median_ms=statistics.median(load.results),
        longest_ms=max(load.results),
        to_serving_s=statistics.mean(durations),
    )


def pid_of(pid_file: Path) -> int:
    return int(pid_file.read_text())


def hup_and_wait_for_new_pid(pid_file: Path) -> float:
    old = pid_of(pid_file)
    started = time.perf_counter()
    os.kill(old, signal.SIGHUP)
    wait_until(lambda: pid_of(pid_file) != old, 60, "the new version")
    return time.perf_counter() - started


class Slipway:
    """`slipwayd api` and `slipwayd gateway`, each on its own."""

    def __init__(self) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="slipway-bench-graceful-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        self.env["SLIPWAY_DATA_DIR"] = str(self.data)
        self.http_port, self.ssh_port = free_port(), free_port()
        self.processes: list[subprocess.Popen[bytes]] = []

    def start_api(self) -> None:
        pid_file = self.data / "api.pid"
        pid_file.unlink(missing_ok=True)
        self._start("api", "--http-port", str(self.http_port))
        wait_until(pid_file.exists, 60, "the API", self.processes[-1])

    def start_gateway(self) -> None:
        self._start(
            "gateway",
            "--http-port",
            str(self.http_port),
            "--ssh-port",
            str(self.ssh_port),
            "--rate",
            "100000",
            "--burst",
            "100000",
        )
        wait_until((self.data / "gateway.pid").exists, 60, "the gateway", self.processes[-1])

    def _start(self, *args: str) -> None:
        self.processes.append(
            subprocess.Popen(
                [*SLIPWAYD, *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def restart_api(self) -> float:
        """The plain way: stop, wait for the exit, start anew."""
        api = pid_of(self.data / "api.pid")
        started = time.perf_counter()
        os.kill(api, signal.SIGTERM)
        wait_until(partial(exited, api), 60, "the API stops")
        self.start_api()
        wait_until(lambda: port_open("127.0.0.1", self.http_port), 60, "the API")
        return time.perf_counter() - started

    def stop(self) -> None:
        for name in ("api", "gateway"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                os.kill(pid_of(self.data / f"{name}.pid"), signal.SIGTERM)
        for process in self.processes:
            stop_process(process)
        shutil.rmtree(self.data, ignore_errors=True)


def sshd_hup(sshd: Sshd) -> Callable[[], float]:
    """sshd re-executes itself on HUP: the time until its port answers with a banner again."""

    def upgrade() -> float:
        assert sshd.process is not None
        started = time.perf_counter()
        sshd.process.send_signal(signal.SIGHUP)
        time.sleep(0.001)  # it is away from the moment it gets the signal
        wait_until(lambda: _answers(ssh_banner(sshd.port)), 30, "sshd again")
        return time.perf_counter() - started

    return upgrade


def _answers(probe: Callable[[], None]) -> bool:
    try:
        probe()
        return True
    except OSError:
        return False


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrades", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    options = parser.parse_args()
    n, clients = options.upgrades, options.clients

    slipway = Slipway()
    try:
        slipway.start_api()
        slipway.start_gateway()
        with Sshd() as sshd:
            print(f"SSH: {n} upgrades under {clients} clients opening connections")
            print(HEADER)
            theirs = under_load(ssh_banner(sshd.port), sshd_hup(sshd), n, clients)
            print(theirs.row("OpenSSH sshd, SIGHUP"), flush=True)
        gateway_pid = slipway.data / "gateway.pid"
        ours = under_load(
            ssh_banner(slipway.ssh_port), lambda: hup_and_wait_for_new_pid(gateway_pid), n, clients
        )
        print(ours.row("slipway gateway, SIGHUP"))
        print(
            f"  failed: {ours.failed} vs {theirs.failed}; longest connection: "
            f"{ratio(ours.longest_ms, theirs.longest_ms)} sshd's\n",
            flush=True,
        )

        print(f"HTTP: {n} upgrades under {clients} clients making requests")
        print(HEADER)
        api_pid = slipway.data / "api.pid"
        ours = under_load(
            http_health(slipway.http_port), lambda: hup_and_wait_for_new_pid(api_pid), n, clients
        )
        print(ours.row("slipwayd api, SIGHUP"), flush=True)
        theirs = under_load(http_health(slipway.http_port), slipway.restart_api, n, clients)
        print(theirs.row("slipwayd api, stop + start"))
        print(
            f"  failed: {ours.failed} vs {theirs.failed}; longest request: "
            f"{ratio(ours.longest_ms, theirs.longest_ms)} the restart's"
        )
    finally:
        slipway.stop()


if __name__ == "__main__":
    main()
