"""Push to release, for the sample Python app (tests/apps/python: Flask and gunicorn from
PyPI), through a real `slipwayd up` and OpenSSH's git, in one run:

- cold: a new app, its first push (uv downloads every package);
- warm: the same app, a code change (requirements unchanged: uv's cache per app);
- the platform's overhead: the push's wall time minus the buildpack's own work (from
  "Python app detected" to "Discovering process types", as the pusher sees them), against
  the same push to a branch that does not deploy (git over SSH and the hooks alone).

Each release is left to start (the runner deploys it) before the next push.

    .venv/bin/python bench/build.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builds_support import Platform  # noqa: E402


def timed_push(platform: Platform, app: Path, *args: str) -> tuple[float, float]:
    """Wall seconds of the push, and seconds of the buildpack's own work within it."""
    began = time.monotonic()
    push = subprocess.Popen(
        ["git", "push", "slipway", *(args or ("main",))],
        cwd=app,
        env=platform.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert push.stderr is not None
    marks: dict[str, float] = {}
    lines = []
    for line in push.stderr:
        lines.append(line)
        for mark in ("app detected", "Discovering process types"):
            if mark in line:
                marks[mark] = time.monotonic()
    if push.wait() != 0:
        raise SystemExit("push failed:\n" + "".join(lines))
    total = time.monotonic() - began
    released = re.search(r"Released (v\d+)", "".join(lines))
    if released:  # let the runner start it before the next push: it would share the CPU
        serving = f" {released.group(1)} serves at http://{app.name}."
        log = platform.data / "runner.log"
        deadline = time.monotonic() + 60
        while serving not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    work = marks.get("Discovering process types", 0.0) - marks.get("app detected", 0.0)
    return total, work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-build-") as root:
        platform = Platform(Path(root))
        platform.start()
        try:
            cold, warm, plain = [], [], []
            for run in range(options.runs):
                app = platform.new_app(f"bench-{run}", "python")
                cold.append(timed_push(platform, app))
                for step in range(2):
                    platform.commit(app, {"app.py": (app / "app.py").read_text() + "\n"})
                    warm.append(timed_push(platform, app))
                    platform.commit(app, {"notes.txt": f"{run}.{step}\n"})
                    plain.append(timed_push(platform, app, "HEAD:refs/heads/not-deployed")[0])
        finally:
            platform.stop()

    def median(values: list[float]) -> float:
        return statistics.median(values)

    cold_total, cold_work = median([c[0] for c in cold]), median([c[1] for c in cold])
    warm_total, warm_work = median([w[0] for w in warm]), median([w[1] for w in warm])
    overhead = median([total - work for total, work in cold + warm])
    print(f"sample Python app (Flask + gunicorn), {options.runs} runs, medians")
    print(f"  cold push to release   {cold_total:6.2f} s   (buildpack {cold_work:.2f} s)")
    print(f"  warm push to release   {warm_total:6.2f} s   (buildpack {warm_work:.2f} s)")
    print(f"  push, no build         {median(plain):6.2f} s   (git over SSH, the hooks)")
    print(f"  platform overhead      {overhead:6.2f} s   (push minus the buildpack; goal <= 1 s)")
    print(f"  warm vs cold build     {cold_work / warm_work:6.1f}x faster (goal >= 3x)")
    print(f"  warm vs cold push      {cold_total / warm_total:6.1f}x faster")


if __name__ == "__main__":
    main()
