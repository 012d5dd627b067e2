"""Limits on connections before they authenticate, so that no client can crowd others out.

As OpenSSH's sshd: a client may hold only a few connections in the handshake at once
(``PerSourceMaxStartups``); beyond ``start`` unauthenticated connections in all, new ones
are refused at random, more often as the count nears ``full`` (``MaxStartups
start:rate:full``). Each client also has a rate of new connections, spent by every attempt,
refused or not. A client is an IPv4 address or an IPv6 /64 (one host's usual allocation), as
announced by PROXY when a trusted balancer sends it.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter
from dataclasses import dataclass, field


def source_of(address: str) -> str:
    """The key limits count by: the address, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class ConnectionLimits:
    rate: float = 10.0  # new connections per second and client...
    burst: int = 60  # ...with bursts up to this many
    per_source: int = 10  # unauthenticated connections at once per client
    start: int = 30  # unauthenticated connections in all before random refusals...
    drop_rate: float = 0.3  # ...refusing this share of new ones at ``start``...
    full: int = 200  # ...rising to all of them here
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _starting: Counter[str] = field(default_factory=Counter)  # per source
    unauthenticated: int = 0

    def admit(self, source: str) -> str | None:
        """None to accept a new connection from ``source`` (counted as unauthenticated
        until :meth:`done_starting`), or why it is refused."""
        if not self._spend_token(source):
            return "connection rate limit"
        if self._starting[source] >= self.per_source:
            return "too many unauthenticated connections from one client"
        if self.unauthenticated >= self.full:
            return "too many unauthenticated connections"
        if self.unauthenticated >= self.start:
            share = (self.unauthenticated - self.start) / max(1, self.full - self.start)
            if random.random() < self.drop_rate + (1 - self.drop_rate) * share:
                return "too many unauthenticated connections (random early drop)"
        self._starting[source] += 1
        self.unauthenticated += 1
        return None

    def done_starting(self, source: str) -> None:
        """An admitted connection authenticated, or ended before it could."""
        self.unauthenticated -= 1
        self._starting[source] -= 1
        if self._starting[source] <= 0:
            del self._starting[source]

    def _spend_token(self, source: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._forget_idle(now)
            bucket = self._buckets[source] = Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have refilled: they carry no information any more."""
        full = [
            source
            for source, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
        ]
        for source in full:
            del self._buckets[source]
