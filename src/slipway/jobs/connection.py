"""Opening Redis from a URL, the same way in every part of slipway.jobs: ``redis://``,
``rediss://`` (TLS) or ``unix://`` (the socket of the Redis ``slipwayd up`` runs).

redis-py hands every keyword to the connection class the URL picks, and the unix-socket one
refuses TCP options, so they are only given for TCP URLs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio

SCHEMES = ("redis", "rediss", "unix")
# redis-rb's default, as Sidekiq's: longer than a 2 s blocking fetch, short enough that a
# Redis that accepts connections but never answers is noticed (nothing else would notice).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0


def connection_options(url: str) -> dict[str, Any]:
    """What ``from_url`` gets besides ``url``: timeouts, and keepalive over TCP.

    Options in the URL's query string (``?socket_timeout=10``) still win.
    """
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:  # the URL itself may hold a password: not in the message
        raise ValueError(
            f"unsupported Redis URL scheme {scheme + '://' if scheme else '(none)'}: "
            "use redis://, rediss:// or unix://"
        )
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": READ_TIMEOUT,
    }
    if scheme != "unix":
        options["socket_keepalive"] = True  # a peer that vanished is noticed while idle
    return options


def sync_redis(url: str, **options: Any) -> redis.Redis:
    return redis.Redis.from_url(url, **{**connection_options(url), **options})


def async_redis(url: str, **options: Any) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, **{**connection_options(url), **options})
