"""`slipway db-tunnel` against `ssh -L` through OpenSSH's sshd, to the same PostgreSQL (the
app's add-on), in the same run: the read throughput of a large COPY, and the time to open
a connection (a new SSH channel, PostgreSQL's startup and authentication included).
Each side uses its default cipher: `ssh -L` chacha20-poly1305 (OpenSSH's first choice),
db-tunnel AES-GCM; `--ssh-cipher aes128-gcm@openssh.com` gives `ssh -L` ours.

    .venv/bin/python bench/tunnel.py [--megabytes 200] [--connections 20] [--runs 5]
                                        [--ssh-cipher C]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builds_support import SLIPWAY, Platform, web_app  # noqa: E402
from tests.services import Sshd, wait_until  # noqa: E402

from slipway.host.ports import free_port, port_open  # noqa: E402


def read_rate(url: str, megabytes: int) -> float:
    """MB/s of a COPY of ``megabytes`` from the server."""
    rows = megabytes * 1024  # 1 KiB each
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        started = time.perf_counter()
        got = 0
        query = sql.SQL(
            "COPY (SELECT repeat('x', 1023) FROM generate_series(1, {})) TO STDOUT"
        ).format(sql.Literal(rows))
        with cursor.copy(query) as copy:
            for block in copy:
                got += len(block)
        seconds = time.perf_counter() - started
    assert got == rows * 1024, got
    return megabytes / seconds


def connect_times(url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with psycopg.connect(url) as connection:
            connection.execute("SELECT 1")
        times.append(time.perf_counter() - started)
    return sorted(times)


def via_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="COPYs each, interleaved")
    parser.add_argument("--ssh-cipher", help="ssh -L's cipher (-c); OpenSSH's default if unset")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-tunnel-") as root:
        platform = Platform(Path(root))
        platform.start()
        tunnel = ssh = None
        try:
            app = platform.new_app("bench", None, web_app("b"))
            assert platform.push(app).returncode == 0
            platform.answers("bench", "b pid=")
            platform.run(SLIPWAY, "addons", "add", "postgresql", "-a", "bench")
            url = platform.get("/v1/apps/bench/env")["env"]["DATABASE_URL"]
            database = urlsplit(url)
            tunnel = subprocess.Popen(
                [SLIPWAY, "db-tunnel", "-a", "bench", "-p", "0"],
                env=platform.env,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert tunnel.stdout is not None
            found = re.search(r"127\.0\.0\.1:(\d+)", tunnel.stdout.readline())
            assert found, "db-tunnel did not open"
            ours = via_port(url, int(found[1]))
            with Sshd() as sshd:
                local = free_port()
                *options, destination = sshd.client_argv()
                forward = f"{local}:127.0.0.1:{database.port}"
                cipher = ["-c", args.ssh_cipher] if args.ssh_cipher else []
                ssh = subprocess.Popen([*options, *cipher, "-N", "-L", forward, destination])
                wait_until(lambda: port_open("127.0.0.1", local), 10, "ssh -L")
                theirs = via_port(url, local)
                read_rate(ours, 10), read_rate(theirs, 10)  # warm both
                rates: dict[str, list[float]] = {"db-tunnel": [], "ssh -L": []}
                for _ in range(args.runs):  # interleaved: both see the same machine
                    rates["db-tunnel"].append(read_rate(ours, args.megabytes))
                    rates["ssh -L"].append(read_rate(theirs, args.megabytes))
                setup = {
                    "db-tunnel": connect_times(ours, args.connections),
                    "ssh -L": connect_times(theirs, args.connections),
                }
                ssh.terminate()
            median = {name: statistics.median(values) for name, values in rates.items()}
            print(f"COPY of {args.megabytes} MB through the tunnel (median of {args.runs}, MB/s):")
            for name, values in rates.items():
                shown = ", ".join(f"{v:.0f}" for v in values)
                print(f"  {name:<10} {median[name]:6.0f}   (runs: {shown})")
            ratio = median["db-tunnel"] / median["ssh -L"]
            print(f"  ratio db-tunnel / ssh -L: {ratio:.2f}x")
            print(f"Connection setup, {args.connections} connections (ms):")
            for name, times in setup.items():
                print(
                    f"  {name:<10} p50 {statistics.median(times) * 1000:6.1f}   "
                    f"max {times[-1] * 1000:6.1f}"
                )
            print(json.dumps({"median_mb_s": median}))
        finally:
            for process in (tunnel, ssh):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(10)
            platform.stop()


if __name__ == "__main__":
    main()
