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
from slipway.store.names import APP_NAME

log = logging.getLogger("slipway.gateway")
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0
TUNNEL_ADDON = re.compile(r"db|ad-[0-9]{1,9}")


class TunnelSession(asyncssh.SSHTCPSession[bytes]):
    """Relays bytes between an SSH channel and a TCP connection, with backpressure both
    ways (the SSH window on one side, the socket's write buffer on the other)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        app: str,
        repository: str | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.app = app
        self.repository = repository  # the app's uid when the tunnel was allowed
        self.on_close: Callable[[], None] = lambda: None
        self.channel: asyncssh.SSHTCPChannel[bytes] | None = None
        self._can_send = asyncio.Event()
        self._can_send.set()
        self._relay: asyncio.Task[None] | None = None

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.channel = chan

    def session_started(self) -> None:
        self._relay = asyncio.get_running_loop().create_task(self._to_client())

    async def _to_client(self) -> None:
        assert self.channel is not None
        try:
            while data := await self.reader.read(CHUNK):
                await self._can_send.wait()
                self.channel.write(data)
            self.channel.write_eof()  # the database has hung up: so does the tunnel
        except (OSError, asyncssh.Error):
            pass
        self.channel.close()

    def pause_writing(self) -> None:
        self._can_send.clear()

    def resume_writing(self) -> None:
        self._can_send.set()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > 4 * CHUNK and self.channel:
            self.channel.pause_reading()
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except OSError:
            return
        if self.channel:
            self.channel.resume_reading()

    def eof_received(self) -> bool:
        if self.writer.can_write_eof():
            self.writer.write_eof()
        return True  # keep receiving the database's answer

    def close(self) -> None:
        """End the tunnel (access to the app was revoked)."""
        if self.channel is not None:
            self.channel.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writer.close()
        if self._relay:
            self._relay.cancel()
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
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as error:
        log.warning("tunnel to %s's database at %s:%s failed: %s", name, host, port, error)
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_CONNECT_FAILED, f"{name}'s database does not answer"
        ) from None
    log.info("tunnel opened", extra={"user": user, "app": name})
    return TunnelSession(reader, writer, name, grant.repository_id)
