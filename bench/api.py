"""Key lookup and authorisation, the two API calls in every git push: p50/p99 latency and
throughput at 1 and 200 concurrent connections, on SQLite and on PostgreSQL, in one run.

The load comes from wrk (C, keep-alive connections) against `slipwayd api` (one uvicorn
process), with 1,000 users, keys and apps in the store. The ratio column compares PostgreSQL
with SQLite.

    .venv/bin/python bench/api.py [--users 1000] [--seconds 10]
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


def measure(database_url: str, users: int, seconds: int) -> dict[tuple[str, int], dict[str, float]]:
    fingerprints, bodies = populate(database_url, users)
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
        [str(SLIPWAYD), "api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base), 30, "API", server)
        results = {}
        scripts = {
            "key lookup": LOOKUP % lua_list([quote(f, safe="") for f in fingerprints]),
            "authorize": AUTHORIZE % lua_list(bodies),
        }
        for name, script in scripts.items():
            wrk(base, script, 10, 2)  # warm up
            for connections in (1, 200):
                results[(name, connections)] = wrk(base, script, connections, seconds)
        return results
    finally:
        stop_process(server)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    started = time.time()
    sqlite_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-sqlite-"))
    sqlite = measure(f"sqlite:///{sqlite_dir / 'slipway.db'}", options.users, options.seconds)
    with Postgres() as postgres:
        postgresql = measure(postgres.url, options.users, options.seconds)
    print(
        f"{options.users} users/keys/apps; one `slipwayd api` process; wrk, "
        f"{options.seconds} s per row; {os.cpu_count()} CPUs"
    )
    print(
        f"{'call':<11} {'conc':>4} | {'SQLite p50':>10} {'p99':>7} {'req/s':>7} | "
        f"{'PostgreSQL p50':>14} {'p99':>7} {'req/s':>7} | {'PG/SQLite p50':>13}"
    )
    for key, lite in sqlite.items():
        pg = postgresql[key]
        print(
            f"{key[0]:<11} {key[1]:>4} | {lite['p50']:>8.2f}ms {lite['p99']:>5.1f}ms "
            f"{lite['rps']:>7.0f} | {pg['p50']:>12.2f}ms {pg['p99']:>5.1f}ms {pg['rps']:>7.0f}"
            f" | {pg['p50'] / lite['p50']:>12.2f}x"
        )
        if lite["errors"] or pg["errors"]:
            print(f"  non-2xx answers: SQLite {lite['errors']:.0f}, PostgreSQL {pg['errors']:.0f}")
    print(f"(run took {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
