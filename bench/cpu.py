"""Where the CPU goes while something runs: every process's CPU time, sampled from /proc
(so short-lived ones, such as git's, are counted), summed by command.

    with CpuByCommand() as cpu:
        run()
    print(cpu.report())
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.01  # seconds


def _processes() -> dict[int, tuple[str, float]]:
    """pid → (its command, CPU seconds so far)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if name.startswith("python") or name == "slipwayd":  # which of ours
            name = " ".join(a.decode(errors="replace") for a in argv[1:4] if a)[-60:]
        found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return found


class CpuByCommand:
    def __init__(self) -> None:
        self._before: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> CpuByCommand:
        self._before = _processes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(_processes())

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self._last.update(_processes())

    def seconds(self) -> dict[str, float]:
        """CPU seconds by command, most first."""
        used: defaultdict[str, float] = defaultdict(float)
        for pid, (name, cpu) in self._last.items():
            before = self._before.get(pid)
            used[name] += cpu - (before[1] if before and before[0] == name else 0.0)
        return dict(sorted(used.items(), key=lambda item: -item[1]))

    def report(self, top: int = 8) -> str:
        used = self.seconds()
        lines = [
            f"    {cpu:6.2f} s  {name}" for name, cpu in list(used.items())[:top] if cpu >= 0.01
        ]
        return "\n".join([*lines, f"    {sum(used.values()):6.2f} s  in all"])
