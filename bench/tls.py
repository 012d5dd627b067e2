"""What HTTPS costs through the router: the same load (wrk) over plain HTTP and over TLS to
one app instance behind the router, in one run.

- kept-alive connections (50): requests/s, p50 and p99 (goal: TLS costs at most 15 % of the
  throughput);
- a new connection per request (``Connection: close``, 20 at a time): new TLS handshakes a
  second against new plain connections a second.

The certificate is the one a domain would get from Let's Encrypt: ECDSA P-256, with its
chain, loaded through the runtime API as the platform does.

    .venv/bin/python bench/tls.py [--seconds 10] [--connections 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import stop_process, wait_until  # noqa: E402
from tests.tls_support import TestCa  # noqa: E402

from bench.router import APP  # noqa: E402
from bench.wrk import wrk  # noqa: E402
from slipway.host.ports import free_port, port_open  # noqa: E402
from slipway.router.certificates import Certificates  # noqa: E402
from slipway.router.haproxy import RouterFiles, router_service  # noqa: E402
from slipway.router.runtime import RuntimeApi  # noqa: E402
from slipway.router.table import Router, Target  # noqa: E402

HOST = "bench.localhost"


def router_cpu(files: RouterFiles) -> float:
    """CPU seconds HAProxy's processes have used (what TLS costs the router itself, apart
    from what it costs wrk on the same cores)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "haproxy" and str(files.config) in (
            process.info["cmdline"] or []
        ):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def row(label: str, http: float, https: float, compare: str) -> None:
    difference = f"{https / http:9.2f}x" if compare == "ratio" else f"{https - http:+9.2f} ms"
    print(f"{label:34}{http:10.2f}{https:10.2f}{difference}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("haproxy") is None:
        raise SystemExit("needs wrk and haproxy (make bench installs them)")
    directory = Path(tempfile.mkdtemp(prefix="sw-bench-tls-"))
    app_port, http_port, https_port = free_port(), free_port(), free_port()
    app = subprocess.Popen([sys.executable, "-c", APP, str(app_port)])
    router = router_service(directory, "127.0.0.1", http_port, slots=10, https_port=https_port)
    files = RouterFiles(directory)
    try:
        wait_until(lambda: port_open("127.0.0.1", app_port), 30, "the app", app)
        router.start()
        Router(files, slots=10).switch("bench", [Target("web-1", "127.0.0.1", app_port)])
        chain, key = TestCa().issue(HOST)
        Certificates(files.certs_dir, files.crt_list, RuntimeApi(files.admin_socket)).set_default(
            chain + key
        )
        plain, tls = f"http://127.0.0.1:{http_port}/", f"https://127.0.0.1:{https_port}/"
        wrk(tls, HOST, options.connections, 2)  # warm up
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(options.rounds):  # alternated: a noisy moment hits both alike
            for name, url in (("http", plain), ("https", tls)):
                before = router_cpu(files)
                load = wrk(url, HOST, options.connections, options.seconds)
                spent = router_cpu(files) - before
                load["router us"] = spent * 1e6 / max(load["rps"] * options.seconds, 1)
                runs.setdefault((name, "kept"), []).append(load)
                runs.setdefault((name, "new"), []).append(
                    wrk(url, HOST, 20, options.seconds, close=True)
                )
    finally:
        router.stop()
        stop_process(app)
        shutil.rmtree(directory, ignore_errors=True)
    results = {
        key: {field: statistics.median(run[field] for run in found) for field in found[0]}
        for key, found in runs.items()
    }
    print(f"medians of {options.rounds} rounds of {options.seconds} s")
    print(f"{'':34}{'http':>10}{'https':>10}{'ratio':>10}")
    kept_http, kept_tls = results["http", "kept"], results["https", "kept"]
    new_http, new_tls = results["http", "new"], results["https", "new"]
    kept = f"{options.connections} kept-alive"
    row(f"{kept}, requests/s", kept_http["rps"], kept_tls["rps"], "ratio")
    row(f"{kept}, p50 ms", kept_http["p50"], kept_tls["p50"], "ms")
    row(f"{kept}, p99 ms", kept_http["p99"], kept_tls["p99"], "ms")
    row(f"{kept}, router CPU us/request", kept_http["router us"], kept_tls["router us"], "ratio")
    row("new connections/s (20 at once)", new_http["rps"], new_tls["rps"], "ratio")
    failed = sum(r["failed"] + r["socket errors"] for found in runs.values() for r in found)
    print(f"{'failed requests, socket errors':34}{failed:10.0f}")
    print("goal: kept-alive HTTPS at least 0.85x HTTP's requests/s")


if __name__ == "__main__":
    main()
