"""Limits on connections before they authenticate: per-IP rate, and how many may be
unauthenticated at once (OpenSSH's MaxStartups), so floods cannot exhaust the gateway."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class ConnectionLimits:
    rate: float = 10.0  # new connections per second and client address...
    burst: int = 60  # ...with bursts up to this many
    max_unauthenticated: int = 100
    unauthenticated: int = 0
    _buckets: dict[str, Bucket] = field(default_factory=dict)

    def admit(self, address: str) -> str | None:
        """None to accept a new connection from ``address``, or why it is refused."""
        if self.unauthenticated >= self.max_unauthenticated:
            return "too many unauthenticated connections"
        now = time.monotonic()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._forget_idle(now)
            bucket = self._buckets[address] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return "connection rate limit"
        bucket.tokens -= 1
        return None

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have refilled: they carry no information any more."""
        full = [
            address
            for address, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
        ]
        for address in full:
            del self._buckets[address]
