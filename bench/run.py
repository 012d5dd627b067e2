"""`slipway run`, measured through a real `slipwayd up`: the time from `slipway run -- true`
to its exit (goal: at most 1 s; Heroku and Scalingo take several), and the byte rate of a
piped `slipway run -- cat` against a local `cat` pipe, same data, same run.

    .venv/bin/python bench/run.py [--runs 20] [--megabytes 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builds_support import SLIPWAY, Platform, web_app  # noqa: E402


def timed(argv: list[str], env: dict[str, str], data: bytes = b"") -> tuple[float, bytes]:
    started = time.perf_counter()
    done = subprocess.run(argv, input=data, env=env, capture_output=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-run-") as root:
        platform = Platform(Path(root))
        platform.start()
        try:
            app = platform.new_app("bench", None, web_app("b"))
            assert platform.push(app).returncode == 0
            platform.answers("bench", "b pid=")
            run = [SLIPWAY, "run", "-a", "bench", "--"]
            timed([*run, "true"], platform.env)  # the release is unpacked once
            times = sorted(timed([*run, "true"], platform.env)[0] for _ in range(args.runs))
            local = sorted(timed(["bash", "-c", "true"], platform.env)[0] for _ in range(5))
            print(f"slipway run -- true, {args.runs} runs:")
            print(
                f"  p50 {statistics.median(times) * 1000:.0f} ms, "
                f"max {times[-1] * 1000:.0f} ms (local bash -c true: "
                f"{statistics.median(local) * 1000:.1f} ms)"
            )
            data = os.urandom(args.megabytes * 2**20)
            seconds, out = timed([*run, "cat"], platform.env, data)
            assert out == data, "the piped copy differs"
            local_seconds, local_out = timed(["cat"], platform.env, data)
            assert local_out == data
            rate, local_rate = args.megabytes / seconds, args.megabytes / local_seconds
            print(f"slipway run -- cat, {args.megabytes} MB piped through, byte-exact:")
            print(
                f"  {rate:.0f} MB/s against a local cat pipe {local_rate:.0f} MB/s: "
                f"{rate / local_rate:.2f}x"
            )
        finally:
            platform.stop()


if __name__ == "__main__":
    main()
