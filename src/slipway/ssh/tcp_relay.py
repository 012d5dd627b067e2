"""Bytes between a TCP connection and an SSH ``direct-tcpip`` channel, for both ends of a
database tunnel: the gateway (channel to the add-on) and `slipway db-tunnel` (local
connection to the channel).

Two protocol objects call each other directly, with no task or stream buffer in between:
each side reads only while the other can take more (the SSH window one way, the socket's
write buffer the other), and an EOF is passed on as a half-close, as ``ssh -L`` does."""

from __future__ import annotations

import asyncio
from typing import cast

import asyncssh

# Reads stay under glibc's mmap threshold (128 KiB): a larger buffer anywhere on the path
# (ours or asyncssh's copies of it) is mapped and faulted in afresh for every packet.
CHUNK = 64 * 1024


class SocketEnd(asyncio.BufferedProtocol):
    """The TCP connection: read into one buffer again and again (asyncio's default is a
    fresh 256 KiB buffer per read, over that threshold) and written to the channel."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(CHUNK))
        self.transport: asyncio.Transport | None = None
        self.channel: asyncssh.SSHTCPChannel[bytes] | None = None
        self._early = bytearray()  # read before the channel opened (uvloop reads at once)
        self.ended = False  # the socket's peer has sent all it will
        self.channel_ended = False  # the channel's peer has

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.pause_reading()  # until the channel is open: ChannelEnd resumes it

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.channel is None:
            self._early += self.buffer[:nbytes]
            assert self.transport is not None
            self.transport.pause_reading()
        elif not self.channel.is_closing():
            self.channel.write(bytes(self.buffer[:nbytes]))

    def eof_received(self) -> bool:
        self.ended = True
        if self.channel is not None:
            self._pass_eof(self.channel)
        return True  # keep the socket open for what the channel still sends

    def _pass_eof(self, channel: asyncssh.SSHTCPChannel[bytes]) -> None:
        """Half-close the channel; close it once both ways have ended (as sshd does: the
        client waits for that close)."""
        if not channel.is_closing():
            channel.write_eof()
        if self.channel_ended:
            channel.close()

    def attach(self, channel: asyncssh.SSHTCPChannel[bytes]) -> None:
        """The channel is open: send it what came before."""
        self.channel = channel
        if self._early:
            channel.write(bytes(self._early))
            self._early.clear()
        if self.ended:
            self._pass_eof(channel)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None:
            self.channel.close()  # after what is still buffered for the other end

    def pause_writing(self) -> None:
        if self.channel is not None:
            self.channel.pause_reading()

    def resume_writing(self) -> None:
        if self.channel is not None:
            self.channel.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ChannelEnd(asyncssh.SSHTCPSession[bytes]):
    """The SSH channel: what it receives is written to the socket."""

    def __init__(self, socket: SocketEnd) -> None:
        self.socket = socket
        self.channel: asyncssh.SSHTCPChannel[bytes] | None = None

    @property
    def _transport(self) -> asyncio.Transport:
        assert self.socket.transport is not None
        return self.socket.transport

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.channel = chan
        self.socket.attach(chan)

    def session_started(self) -> None:
        if self._transport.is_closing() and self.channel is not None:
            self.channel.close()  # the socket went while the channel opened
        else:
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._transport.write(data)

    def eof_received(self) -> bool:
        self.socket.channel_ended = True
        if self.socket.ended and self.channel is not None:
            self.channel.close()
        elif self._transport.can_write_eof():
            self._transport.write_eof()
        return True  # keep receiving what the socket's side still sends

    def connection_lost(self, exc: Exception | None) -> None:
        self.socket.channel = None
        self._transport.close()
