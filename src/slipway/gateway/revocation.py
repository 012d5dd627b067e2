"""Revocation: what the API takes away ends at once, on connections already open too.

The gateway follows the API's access changes (keys added or removed, collaborators
removed, apps destroyed), a few times a second. For each change it drops what it cached and
checks again the connections and channels the change may concern: a connection whose key
no longer belongs to its user is ended; a git session or tunnel whose app the user may no
longer reach (or whose name now belongs to another app) is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from slipway.gateway.control import AccessChange, ControlPlane, ControlPlaneError

log = logging.getLogger("slipway.gateway")

# After this long without hearing from the API, changes may have been pruned from its log:
# everything open is checked again.
RESET_AFTER = 1800.0
SEEN_FOR = 120.0  # seconds an id is remembered (the API's window is 10 s)


@dataclass(eq=False)
class LiveChannel:
    """An open git session or tunnel: what it was allowed to reach, and how to end it."""

    end: Callable[[str], None]
    app: str | None = None  # None until authorised
    action: str | None = None
    repository: str | None = None  # the app's uid when it was authorised


@dataclass(frozen=True)
class Identity:
    """Who proved they hold a key: bound when authentication completes, never before."""

    user: str
    fingerprint: str
    client: str  # address:port, from PROXY when a listed balancer sent one


class Watched(Protocol):
    """A live connection, as the watcher sees it."""

    identity: Identity | None
    channels: set[LiveChannel]

    def revoke(self, reason: str) -> None: ...


@dataclass
class AccessWatcher:
    control: ControlPlane
    connections: Callable[[], Iterable[Watched]]
    interval: float = 0.3
    _since: str | None = None
    _heard: float = field(default_factory=time.monotonic)
    _seen: dict[int, float] = field(default_factory=dict)

    async def run(self) -> None:
        """Follow the changes until cancelled; an unreachable API is retried (and said so
        once a minute, not at every try)."""
        failing_since: float | None = None
        said = 0.0
        while True:
            try:
                await self.poll()
                if failing_since is not None:
                    log.info("following access changes again")
                failing_since = None
            except ControlPlaneError as error:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - said >= 60:
                    log.warning("cannot follow access changes: %s", error)
                    said = now
            await asyncio.sleep(self.interval)

    async def poll(self) -> None:
        since, changes = await self.control.access_changes(self._since)
        now = time.monotonic()
        if self._since is not None and now - self._heard > RESET_AFTER:
            log.warning("access changes unheard for %.0f s: checking everything", now - self._heard)
            await self.apply(None)
        elif fresh := [change for change in changes if change.id not in self._seen]:
            await self.apply(fresh)
            for change in fresh:
                self._seen[change.id] = now
        self._since, self._heard = since, now
        self._seen = {id_: at for id_, at in self._seen.items() if now - at < SEEN_FOR}

    async def apply(self, changes: list[AccessChange] | None) -> None:
        """Check again what ``changes`` concern; None: everything (after a gap)."""
        keys = None
        if changes is not None:
            keys = {c.fingerprint for c in changes if c.kind == "key" and c.fingerprint}
        self.control.forget_keys(keys)
        for connection in list(self.connections()):
            identity = connection.identity
            if identity is None:
                continue
            concerned = keys is None or identity.fingerprint in keys
            if concerned and not await self._key_still_theirs(identity):
                connection.revoke("your SSH key was removed from your Slipway account")
                continue
            for channel in list(connection.channels):
                if changes is None or any(_concerns(c, identity, channel) for c in changes):
                    await self._check_channel(identity, channel)

    async def _key_still_theirs(self, identity: Identity) -> bool:
        owner = await self.control.key_owner(identity.fingerprint)
        return owner is not None and owner.user == identity.user

    async def _check_channel(self, identity: Identity, channel: LiveChannel) -> None:
        if channel.app is None or channel.action is None:
            return  # not authorised yet: it will ask the API itself
        grant = await self.control.authorize(identity.user, channel.app, channel.action)
        if grant is None or grant.repository_id != channel.repository:
            log.info("access revoked", extra={"user": identity.user, "app": channel.app})
            channel.end(f"your access to {channel.app} was revoked")


def _concerns(change: AccessChange, identity: Identity, channel: LiveChannel) -> bool:
    if change.kind == "app":
        return change.app == channel.app
    if change.kind == "collaborator":
        return change.app == channel.app and change.user == identity.user
    return False
