"""Zero-downtime deploys, measured: an HTTP load (50 keep-alive connections) on an app while
it is deployed 5 times (git push), its config changed twice (each a new release) and it is
restarted twice (slipway restart's API), through a real `slipwayd up`. Prints the requests,
the failed ones and the connection errors (goal: 0 and 0), and checks that a request sent
once the new version has answered (0.2 s on: the router takes the old one out of rotation
right after adding the new) never gets an older one.

    .venv/bin/python bench/deploy.py [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import sample_server  # noqa: E402
from tests.builds_support import SLIPWAY, Platform  # noqa: E402


class Load:
    """``connections`` clients asking as fast as they can, from a thread of its own."""

    def __init__(self, url: str, host: str, connections: int) -> None:
        self.url, self.host, self.connections = url, host, connections
        self.answers: list[tuple[float, str]] = []  # when asked, which version answered
        self.failures: Counter[str] = Counter()
        self.stopping = False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self.stopping:
            try:
                sent = time.monotonic()
                response = await http.get(self.url, headers={"Host": self.host})
                if response.status_code == 200:
                    self.answers.append((sent, response.text.split()[1]))
                else:
                    self.failures[f"HTTP {response.status_code}"] += 1
            except httpx.HTTPError as error:
                self.failures[type(error).__name__] += 1

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.connections)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-deploy-") as root:
        platform = Platform(Path(root))
        platform.start()
        try:
            app = platform.new_app(
                "bench",
                None,
                {
                    "Procfile": "web: python3 server.py\n",
                    "server.py": sample_server.source("v1", keep_alive=True),
                },
            )
            assert platform.push(app).returncode == 0
            while platform.visit("bench").status_code != 200:
                time.sleep(0.1)
            load = Load(
                f"http://127.0.0.1:{platform.router_port}/", "bench.localhost", options.connections
            )
            load.thread.start()
            switches: list[tuple[str, float]] = []
            for version in range(2, 7):
                time.sleep(1)
                platform.commit(
                    app, {"server.py": sample_server.source(f"v{version}", keep_alive=True)}
                )
                assert platform.push(app).returncode == 0
                switches.append((f"v{version}", wait_for(platform, f"v{version}")))
            for greeting in ("bonjour", "hola"):
                time.sleep(1)
                platform.run(SLIPWAY, "env", "set", f"GREETING={greeting}", "-a", "bench")
                switches.append(("v6", wait_for(platform, greeting)))
            for _ in range(2):
                time.sleep(1)
                before = platform.visit("bench").text.split()[2]
                platform.call("POST", "/v1/apps/bench/restart", {"scope": []})
                while platform.visit("bench").text.split()[2] == before:
                    time.sleep(0.05)
            time.sleep(1)
            load.stopping = True
            load.thread.join()
        finally:
            platform.stop()
    order = [f"v{n}" for n in range(1, 7)]
    stale = sum(
        1
        for switched_to, at in switches
        for when, seen in load.answers
        if when > at + 0.2 and order.index(seen) < order.index(switched_to)
    )
    failed = sum(n for kind, n in load.failures.items() if kind.startswith("HTTP"))
    errors = sum(load.failures.values()) - failed
    print(f"{options.connections} connections, 5 deploys, 2 config changes and 2 restarts")
    print(f"  requests answered                        {len(load.answers)}")
    print(f"  failed requests                          {failed}   (goal: 0)")
    print(f"  connection errors                        {errors}   (goal: 0)")
    print(f"  older version, asked 0.2 s after a switch {stale}   (goal: 0)")
    if load.failures:
        print(f"  failures: {dict(load.failures)}")


def wait_for(platform: Platform, text: str) -> float:
    while text not in platform.visit("bench").text:
        time.sleep(0.05)
    return time.monotonic()


if __name__ == "__main__":
    main()
