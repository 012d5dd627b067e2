"""The router's cost: the same HTTP load (wrk, keep-alive) on an app instance directly and
through the router (HAProxy, routed by Host header), in one run: requests/s, p50 and p99,
at 50 connections (throughput) and at 1 (the latency the router adds, with no queueing).
Goals: throughput >= 0.9x direct, added p50 <= 0.5 ms. On a 2-core machine wrk, HAProxy
and the app share the cores: at saturation the router's CPU comes out of the app's.

The app is a minimal ASGI app under uvicorn (httptools), one process, as a fast Python
instance would be. The router's line per request goes where it goes on a platform: to the
runner's reader (slipway.applog.routerlog), which writes it to the app's log in a private
Redis; `--no-log` lets the lines pile up unread (HAProxy's ring drops the oldest), to show
what the reader costs.

    .venv/bin/python bench/router.py [--seconds 10] [--connections 50] [--no-log]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import RedisServer, stop_process, wait_until  # noqa: E402

from bench.wrk import wrk  # noqa: E402
from slipway.applog.routerlog import RoutedHosts, RouterLog, listen_for_lines  # noqa: E402
from slipway.applog.stream import AppLog, stream_key  # noqa: E402
from slipway.host.ports import free_port, port_open  # noqa: E402
from slipway.router.haproxy import RouterFiles, router_service  # noqa: E402
from slipway.router.table import Router, Target  # noqa: E402

APP = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"6")]})
    await send({"type": "http.response.body", "body": b"hello\\n"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools",
            log_level="warning", access_log=False)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-log", action="store_true", help="leave the router's lines unread")
    options = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("haproxy") is None:
        raise SystemExit("needs wrk and haproxy (make bench installs them)")
    directory = Path(tempfile.mkdtemp(prefix="sw-bench-router-"))
    app_port, router_port = free_port(), free_port()
    app = subprocess.Popen([sys.executable, "-c", APP, str(app_port)])
    router = router_service(directory, "127.0.0.1", router_port, slots=10, https_port=free_port())
    with contextlib.ExitStack() as stack:
        logged = 0
        listener = stack.enter_context(listen_for_lines(RouterFiles(directory).log_socket))
        if not options.no_log:
            server = stack.enter_context(RedisServer())
            connection = redis.Redis.from_url(server.url)
            RoutedHosts(connection).set("bench.localhost", "bench-uid", 1)
            reader = RouterLog(
                listener,
                AppLog(connection, 10_000_000, 1),
                RoutedHosts(connection).app,
            )
            stack.callback(reader.stop)
        try:
            wait_until(lambda: port_open("127.0.0.1", app_port), 30, "the app", app)
            router.start()
            Router(RouterFiles(directory), slots=10).switch(
                "bench", [Target("web-1", "127.0.0.1", app_port)]
            )
            wrk(f"http://127.0.0.1:{app_port}/", "warm.up", options.connections, 2)
            results = {}
            for connections in (options.connections, 1):
                for name, port in (("direct", app_port), ("router", router_port)):
                    results[name, connections] = wrk(
                        f"http://127.0.0.1:{port}/",
                        "bench.localhost",
                        connections,
                        options.seconds,
                    )
            if not options.no_log:
                time.sleep(1)  # the last lines on their way
                logged = connection.xlen(stream_key("bench-uid"))
        finally:
            router.stop()
            stop_process(app)
            shutil.rmtree(directory, ignore_errors=True)
    print(f"{'':24}{'direct':>10}{'router':>10}{'ratio':>10}")
    for connections in (options.connections, 1):
        direct, routed = results["direct", connections], results["router", connections]
        label = f"{connections} connection{'s' if connections > 1 else ''}"
        print(
            f"{label + ', requests/s':24}{direct['rps']:10.0f}{routed['rps']:10.0f}"
            f"{routed['rps'] / direct['rps']:9.2f}x"
        )
        for key in ("p50", "p99"):
            print(
                f"{label + ', ' + key + ' ms':24}{direct[key]:10.2f}{routed[key]:10.2f}"
                f"{routed[key] - direct[key]:+9.2f} ms"
            )
        print(f"{label + ', failed':24}{direct['failed']:10.0f}{routed['failed']:10.0f}")
    if not options.no_log:
        answered = sum(results["router", n]["requests"] for n in (options.connections, 1))
        print(f"router lines in the app's log: {logged} for {answered:.0f} requests answered")
    print("goals: requests/s >= 0.9x direct; p50 at most 0.5 ms more")


if __name__ == "__main__":
    main()
