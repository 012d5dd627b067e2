"""Key lookup and authorisation, the two API calls in every git push: p50/p99 latency and
throughput at 1, 50 and 200 concurrent connections, on SQLite and on PostgreSQL, served by
one API worker and by several (`slipwayd api --workers`), in one run.

The load comes from wrk (C, keep-alive connections) against `slipwayd api`, with 1,000
users, keys and apps in the store. The ratio column compares the workers' throughput with
one worker's.

    .venv/bin/python bench/api.py [--users 1000] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import asyncssh
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import Postgres, stop_process, wait_until  # noqa: E402

from slipway.host.ports import free_port  # noqa: E402
from slipway.store import accounts, apps  # noqa: E402
from slipway.store.db import Database  # noqa: E402
from slipway.store.migrate import migrate  # noqa: E402

SLIPWAYD = Path(sys.executable).parent / "slipwayd"
SECRET = "bench-internal-secret-0123456789abcdefghijkl"  # noqa: S105 - a throwaway server's

LOOKUP = """
local fingerprints = {%s}
request = function()
  local fingerprint = fingerprints[math.random(#fingerprints)]
  return wrk.format("GET", "/internal/keys?fingerprint=" .. fingerprint)
end
"""
AUTHORIZE = """
local bodies = {%s}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/internal/authorize", nil, bodies[math.random(#bodies)])
end
"""


def populate(url: str, users: int) -> tuple[list[str], list[str]]:
    """Users with one key and one app each (plus a collaborator); returns fingerprints and
    authorisation request bodies (half allowed, half not)."""
    database = Database(url)
    migrate(database.engine)
    fingerprints, bodies = [], []
    with database.session() as session:
        people = [accounts.create_user(session, f"user{i}") for i in range(users)]
        for i, user in enumerate(people):
            key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
            fingerprints.append(accounts.add_key(session, user, key, "key").fingerprint)
            app = apps.create_app(session, user, f"app-{i}")
            apps.add_collaborator(session, app, people[(i + 1) % users].name)
        for i in range(users):
            other = random.randrange(users)
            bodies.append(f'{{"user":"user{i}","app":"app-{i}","action":"push"}}')
            bodies.append(f'{{"user":"user{other}","app":"app-{i}","action":"fetch"}}')
    database.dispose()
    return fingerprints, bodies


def lua_list(values: list[str]) -> str:
    return ",".join("[[" + value + "]]" for value in values)


def wrk(url: str, script: str, connections: int, seconds: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {SECRET}",
            "-s",
            file.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(file.name)

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50": ms("50%"),
        "p99": ms("99%"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
    }


CONCURRENCY = (1, 50, 200)
Results = dict[tuple[str, int], dict[str, float]]


def measure(database_url: str, scripts: dict[str, str], seconds: int, workers: int) -> Results:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-api-"))
    env = {
        **os.environ,
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_DATABASE_URL": database_url,
        "SLIPWAY_INTERNAL_SECRET": SECRET,
        "SLIPWAY_HTTP_PORT": str(port),
    }
    server = subprocess.Popen(
        [str(SLIPWAYD), "api", "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), 30, "API", server)
        results = {}
        for name, script in scripts.items():
            wrk(base, script, 10, 2)  # warm up
            for connections in CONCURRENCY:
                results[(name, connections)] = wrk(base, script, connections, seconds)
        return results
    finally:
        stop_process(server)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def compare(database_url: str, options: argparse.Namespace) -> tuple[Results, Results]:
    """The same store and requests served by one worker, then by ``options.workers``."""
    fingerprints, bodies = populate(database_url, options.users)
    scripts = {
        "key lookup": LOOKUP % lua_list([quote(f, safe="") for f in fingerprints]),
        "authorize": AUTHORIZE % lua_list(bodies),
    }
    one = measure(database_url, scripts, options.seconds, 1)
    return one, measure(database_url, scripts, options.seconds, options.workers)


def report(database: str, one: Results, several: Results, workers: int) -> None:
    print(
        f"{database:<10} {'conc':>4} | {'1 worker p50':>12} {'p99':>8} {'req/s':>6} | "
        f"{workers} workers p50 {'p99':>8} {'req/s':>6} | req/s ratio"
    )
    for key, single in one.items():
        multi = several[key]
        print(
            f"{key[0]:<10} {key[1]:>4} | {single['p50']:>10.2f}ms {single['p99']:>6.1f}ms "
            f"{single['rps']:>6.0f} | {multi['p50']:>12.2f}ms {multi['p99']:>6.1f}ms "
            f"{multi['rps']:>6.0f} | {multi['rps'] / single['rps']:>10.2f}x"
        )
        if single["errors"] or multi["errors"]:
            print(f"  non-2xx answers: {single['errors']:.0f} and {multi['errors']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    options = parser.parse_args()
    started = time.time()
    sqlite_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-sqlite-"))
    sqlite = compare(f"sqlite:///{sqlite_dir / 'slipway.db'}", options)
    with Postgres() as postgres:
        postgresql = compare(postgres.url, options)
    print(
        f"{options.users} users/keys/apps; wrk, {options.seconds} s per row; {os.cpu_count()} CPUs"
    )
    report("SQLite", *sqlite, options.workers)
    report("PostgreSQL", *postgresql, options.workers)
    print(f"(run took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
