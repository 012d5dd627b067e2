"""App logs, measured through a real `slipwayd up`: a sample app prints 50,000 lines as fast
as it can while `slipway logs -f` follows.

Prints the delay from print to `slipway logs -f` output (p50, p99) of lines printed 100 a
second; then for the burst, the lines stored per second, the lines lost (0 below the
per-instance cap) and the delays; then the same burst with the default cap (16,384 lines a
minute): what is kept, and the overflow notices (exactly one).

    .venv/bin/python bench/logs.py [--lines 50000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builds_support import SLIPWAY, Platform, web_app  # noqa: E402


def run(count: int, cap: int | None, mode: str = "burst") -> None:
    settings = {"SLIPWAY_LOG_LINES_PER_MINUTE": str(cap)} if cap else {}
    with tempfile.TemporaryDirectory(prefix="slipway-bench-logs-") as root:
        platform = Platform(Path(root), settings=settings)
        platform.start()
        try:
            app = platform.new_app("talker", None, web_app("v1"))
            assert platform.push(app).returncode == 0
            while platform.visit("talker").status_code != 200:
                time.sleep(0.1)
            follower = subprocess.Popen(
                [SLIPWAY, "logs", "-f", "-n", "0", "-a", "talker", "--source", "app"],
                env=platform.env,
                stdout=subprocess.PIPE,
                text=True,
            )
            delays: list[float] = []
            seen = threading.Event()

            def read() -> None:
                assert follower.stdout is not None
                for line in follower.stdout:
                    if " at " in line:
                        delays.append(time.time() - float(line.rsplit(" at ", 1)[1]))
                        seen.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            time.sleep(1)  # the follower is following
            platform.visit("talker", f"/?{mode}={count}")
            expected = min(count, cap or 16_384)
            deadline = time.monotonic() + 120
            while len(delays) < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # anything beyond what is expected
            follower.terminate()
            stored = [e for e in platform.app_log("talker") if e["s"] == "app"]
            notices = [e for e in platform.app_log("talker") if "lines are dropped" in e["m"]]
        finally:
            platform.stop()
    times = [int(e["t"]) for e in stored]
    spread = (max(times) - min(times)) / 1000 if len(times) > 1 else 0.0
    title = f"cap {cap} lines/min" if cap else "default cap (16,384 lines/min)"
    how = "as fast as it can" if mode == "burst" else "100 a second"
    print(f"{count} lines printed {how}, {title}")
    print(f"  lines stored                 {len(stored)}")
    print(f"  lines lost                   {expected - len(stored)}   (goal: 0)")
    print(f"  overflow notices             {len(notices)}   (goal: {1 if count > expected else 0})")
    if spread:
        print(f"  stored per second            {len(stored) / spread:,.0f}")
    if delays:
        ordered = sorted(delays)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        print(f"  lines shown by logs -f       {len(delays)}")
        print(f"  print to logs -f, p50        {statistics.median(ordered) * 1000:.0f} ms")
        print(f"  print to logs -f, p99        {p99 * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    options = parser.parse_args()
    run(500, cap=None, mode="trickle")  # the delay a line sees on its own
    run(options.lines, cap=options.lines * 2)  # under the cap: nothing may be lost
    run(options.lines, cap=None)  # over it: the cap holds, with one notice


if __name__ == "__main__":
    main()
