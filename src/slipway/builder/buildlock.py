"""One build at a time per app: a Redis key naming the deployment that builds, kept alive by
the pusher's hook while it waits.

The hook takes it and refreshes it; the worker checks it while it builds. A hook that dies
(the pusher went away, the machine crashed) stops refreshing it: it expires within TTL
seconds, the worker sees that and cancels the build, and no lock stays behind.
"""

from __future__ import annotations

import redis

TTL = 20  # seconds

# Compare-and-set scripts: only the holder extends or drops the lock.
_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end
return 0"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0"""


def lock_key(app_uid: str) -> str:
    return f"slipway:build-lock:{app_uid}"


def acquire(connection: redis.Redis, app_uid: str, deployment_id: int) -> int | None:
    """None when taken for this deployment; else the deployment that holds it."""
    key = lock_key(app_uid)
    if connection.set(key, str(deployment_id), nx=True, ex=TTL):
        return None
    holder = connection.get(key)
    return int(holder) if holder else acquire(connection, app_uid, deployment_id)


def refresh(connection: redis.Redis, app_uid: str, deployment_id: int) -> bool:
    return bool(connection.eval(_REFRESH, 1, lock_key(app_uid), str(deployment_id), TTL))


def release(connection: redis.Redis, app_uid: str, deployment_id: int) -> None:
    connection.eval(_RELEASE, 1, lock_key(app_uid), str(deployment_id))


def holds(connection: redis.Redis, app_uid: str, deployment_id: int) -> bool:
    value = connection.get(lock_key(app_uid))
    return value is not None and int(value) == deployment_id
