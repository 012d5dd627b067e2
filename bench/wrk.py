"""wrk (HTTP load, keep-alive), as the benchmarks run it: requests/s, requests done, p50 and
p99 (ms), non-2xx answers and whether any socket error happened."""

from __future__ import annotations

import re
import subprocess


def wrk(
    url: str, host: str, connections: int, seconds: int, close: bool = False
) -> dict[str, float]:
    """``close``: a new connection for every request (with TLS, a new handshake)."""
    out = subprocess.run(
        [
            *("wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"),
            *("-H", f"Host: {host}", *(("-H", "Connection: close") if close else ()), url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    assert rps, out
    assert requests, out
    return {
        "rps": float(rps.group(1)),
        "requests": float(requests.group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "failed": float(failed.group(1)) if failed else 0.0,
        "socket errors": 1.0 if errors else 0.0,
    }
