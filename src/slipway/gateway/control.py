"""The gateway's questions to the control plane's internal API, over HTTP.

The gateway holds no user data. Key lookups are cached (they are asked on every
connection) and forgotten as soon as the API reports a change to the key
(gateway.revocation); authorisations never are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

KEY_CACHE_SECONDS = 30.0
UNKNOWN_KEY_CACHE_SECONDS = 5.0


class ControlPlaneError(Exception):
    """The API could not be asked (down, or answering nonsense): fail closed."""


@dataclass(frozen=True)
class KeyOwner:
    user: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class AccessChange:
    id: int
    kind: str  # "key", "collaborator" or "app"
    user: str | None = None
    fingerprint: str | None = None
    app: str | None = None


@dataclass(frozen=True)
class Grant:
    """An allowed action, and where to serve it."""

    repository_host: str | None = None  # "local" or a repo host
    repository_id: str | None = None  # the app's uid, which names its repository
    database: tuple[str, int] | None = None  # for tunnels: where the app's database is


class ControlPlane:
    def __init__(self, api_url: str, secret: str, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {secret}"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._keys: dict[str, tuple[float, KeyOwner | None]] = {}

    async def key_owner(self, fingerprint: str) -> KeyOwner | None:
        cached = self._keys.get(fingerprint)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        response = await self._call(
            "GET", "/internal/keys", params={"fingerprint": fingerprint}, allow_404=True
        )
        owner = None if response is None else KeyOwner(**response)
        ttl = KEY_CACHE_SECONDS if owner else UNKNOWN_KEY_CACHE_SECONDS
        if len(self._keys) > 10_000:  # a flood of unknown keys must not grow memory forever
            self._keys.clear()
        self._keys[fingerprint] = (now + ttl, owner)
        return owner

    def forget_keys(self, fingerprints: set[str] | None) -> None:
        """Drop cached key owners: these (None: all)."""
        if fingerprints is None:
            self._keys.clear()
        for fingerprint in fingerprints or ():
            self._keys.pop(fingerprint, None)

    async def access_changes(self, since: str | None) -> tuple[str, list[AccessChange]]:
        """The changes since ``since`` (and a little before), and what to ask from next."""
        answer = await self._call(
            "GET", "/internal/changes", params={"since": since} if since else None
        )
        try:
            changes = [AccessChange(**change) for change in (answer or {})["changes"]]
            return str((answer or {})["now"]), changes
        except (KeyError, TypeError) as error:
            raise ControlPlaneError(f"the API answered /internal/changes with {error!r}") from None

    async def authorize(self, user: str, app: str, action: str, addon: str = "db") -> Grant | None:
        """The grant, or None when denied (missing and forbidden apps look the same);
        ``addon`` names the add-on a tunnel leads to."""
        request = {"user": user, "app": app, "action": action}
        if action == "tunnel":
            request["addon"] = addon
        answer = await self._call("POST", "/internal/authorize", json=request)
        if not isinstance(answer, dict) or not answer.get("allowed"):
            return None
        repository = answer.get("repository") or {}
        database = answer.get("database")
        return Grant(
            repository_host=repository.get("host"),
            repository_id=repository.get("id"),
            database=(database["host"], int(database["port"])) if database else None,
        )

    async def _call(
        self, method: str, path: str, allow_404: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        try:
            try:
                response = await self.http.request(method, path, **kwargs)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # Most likely a kept-alive connection that the API closed as we sent on it
                # (it restarts for an upgrade). Every call here only reads: send it again.
                response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ControlPlaneError(f"the API is unreachable: {error}") from None
        if allow_404 and response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ControlPlaneError(f"the API answered {response.status_code} to {path}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise ControlPlaneError(f"the API answered {path} with invalid JSON") from None
        return body

    async def aclose(self) -> None:
        await self.http.aclose()
