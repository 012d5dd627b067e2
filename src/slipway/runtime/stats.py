"""CPU and memory per instance, sampled by the runner (``slipway stats``): memory from the
instance's cgroup where it has one (what its limit counts), else the resident memory of its
processes; CPU from its processes' times between two samples."""

from __future__ import annotations

import time

import psutil

from slipway.fleet.processes import InstanceStats
from slipway.runtime.instances import Instance


class Sampler:
    def __init__(self, memory_limit_mb: int | None) -> None:
        self.limit = memory_limit_mb * 1024 * 1024 if memory_limit_mb else None
        self._cpu: dict[int, tuple[float, float]] = {}  # pid → (cpu seconds, when)
        self._peaks: dict[int, int] = {}  # pid → most memory seen (without a cgroup)

    def sample(self, instance: Instance) -> InstanceStats | None:
        process = instance.process
        if process is None or not instance.alive:
            return None
        try:
            tree = [process, *process.children(recursive=True)]
        except psutil.Error:
            return None
        cpu, rss = 0.0, 0
        for member in tree:
            try:
                times = member.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += member.memory_info().rss
            except psutil.Error:
                continue
        now = time.monotonic()
        last_cpu, last_at = self._cpu.get(process.pid, (cpu, now))
        self._cpu[process.pid] = (cpu, now)
        percent = 100 * (cpu - last_cpu) / (now - last_at) if now > last_at else 0.0
        if instance.group is not None:
            memory, peak = instance.group.memory()
        else:
            memory = rss
            peak = self._peaks[process.pid] = max(self._peaks.get(process.pid, 0), rss)
        return InstanceStats(
            name=instance.name,
            port=instance.port,
            cpu_percent=round(max(percent, 0.0), 1),
            memory=memory,
            memory_peak=peak,
            memory_limit=self.limit if instance.group is not None else None,
            restarts=instance.restarts,
            at=time.time(),
        )

    def forget(self, pids: set[int]) -> None:
        """Keep only what running processes need."""
        self._cpu = {pid: v for pid, v in self._cpu.items() if pid in pids}
        self._peaks = {pid: v for pid, v in self._peaks.items() if pid in pids}
