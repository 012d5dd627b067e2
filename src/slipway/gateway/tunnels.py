"""The server side of `slipway db-tunnel`: a direct-tcpip channel whose destination names an
app; if the API allows the user to tunnel to it, the gateway connects to the app's database
at the address the API gives. Clients never choose an address, so no internal host or
metadata service can be reached through the gateway."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import asyncssh

from slipway.gateway.control import ControlPlane, ControlPlaneError
from slipway.ssh.tcp_relay import ChannelEnd, SocketEnd
from slipway.store.names import APP_NAME

log = logging.getLogger("slipway.gateway")
CONNECT_TIMEOUT = 10.0
TUNNEL_ADDON = re.compile(r"db|ad-[0-9]{1,9}")


class TunnelSession(ChannelEnd):
    """A tunnel the gateway serves, ended when the user's access to the app goes."""

    def __init__(self, database: SocketEnd, app: str, repository: str | None) -> None:
        super().__init__(database)
        self.app = app
        self.repository = repository  # the app's uid when the tunnel was allowed
        self.on_close: Callable[[], None] = lambda: None

    def close(self) -> None:
        """End the tunnel (access to the app was revoked)."""
        if self.channel is not None:
            self.channel.close()
        self.socket.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.on_close()  # the connection may open another channel in its place


async def open_tunnel(control: ControlPlane, user: str, destination: str) -> TunnelSession:
    """A tunnel to the add-on ``destination`` names (``APP``, ``APP.db``: the app's first
    add-on; ``APP.ad-N``: add-on N), or ChannelOpenError saying why not."""
    name, _, addon = destination.partition(".")
    if not APP_NAME.fullmatch(name) or not TUNNEL_ADDON.fullmatch(addon or "db"):
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            "tunnels lead to an app's add-on: use APP or APP.ADDON_ID as the host",
        )
    try:
        grant = await control.authorize(user, name, "tunnel", addon or "db")
    except ControlPlaneError as error:
        log.error("tunnel authorisation failed: %s", error)
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_CONNECT_FAILED, "the platform cannot check access right now"
        ) from None
    if grant is None or grant.database is None:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
            f"{name} does not exist, has no such add-on, or you have no access to it",
        )
    host, port = grant.database
    try:
        _, database = await asyncio.wait_for(
            asyncio.get_running_loop().create_connection(SocketEnd, host, port),
            CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError) as error:
        log.warning("tunnel to %s's database at %s:%s failed: %s", name, host, port, error)
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_CONNECT_FAILED, f"{name}'s database does not answer"
        ) from None
    log.info("tunnel opened", extra={"user": user, "app": name})
    return TunnelSession(database, name, grant.repository_id)
