"""The PROXY protocol (v1 text, v2 binary) in front of the SSH handshake, from listed load
balancers only: the header is read with exact lengths, so the SSH bytes after it stay in the
socket for the SSH server."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107


class ProxyError(Exception):
    pass


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = await loop.sock_recv(sock, count - len(data))
        if not chunk:
            raise ProxyError("connection closed inside the PROXY header")
        data += chunk
    return data


async def _peek(loop: asyncio.AbstractEventLoop, sock: socket.socket, count: int) -> bytes:
    """Up to ``count`` bytes without consuming them (waits for the first ones)."""
    future: asyncio.Future[bytes] = loop.create_future()

    def ready() -> None:
        if future.done():
            return
        try:
            future.set_result(sock.recv(count, socket.MSG_PEEK))
        except BlockingIOError:
            return
        except OSError as error:
            future.set_exception(error)

    loop.add_reader(sock.fileno(), ready)
    try:
        return await future
    finally:
        loop.remove_reader(sock.fileno())


async def read_header(sock: socket.socket) -> tuple[str, int] | None:
    """The client address the header announces, or None for a LOCAL/UNKNOWN header."""
    loop = asyncio.get_running_loop()
    start = await _peek(loop, sock, 16)
    if start.startswith(V2_SIGNATURE[: len(start)]) and len(start) >= 12:
        return await _read_v2(loop, sock)
    if start.startswith(V1_PREFIX[: len(start)]):
        return await _read_v1(loop, sock)
    raise ProxyError("the connection does not start with a PROXY header")


async def _read_v1(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> tuple[str, int] | None:
    header = await _peek(loop, sock, V1_MAX)
    end = header.find(b"\r\n")
    while end < 0 and len(header) < V1_MAX:
        await asyncio.sleep(0.01)
        header = await _peek(loop, sock, V1_MAX)
        end = header.find(b"\r\n")
    if end < 0:
        raise ProxyError("PROXY v1 header too long")
    line = (await _recv_exactly(loop, sock, end + 2))[:-2].decode("ascii", "replace")
    parts = line.split(" ")
    if parts[1:2] == ["UNKNOWN"]:
        return None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyError(f"invalid PROXY v1 header: {line[:60]!r}")
    try:
        ipaddress.ip_address(parts[2])
        port = int(parts[4])
    except ValueError:
        raise ProxyError(f"invalid PROXY v1 header: {line[:60]!r}") from None
    return parts[2], port


async def _read_v2(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> tuple[str, int] | None:
    fixed = await _recv_exactly(loop, sock, 16)
    if fixed[:12] != V2_SIGNATURE:
        raise ProxyError("invalid PROXY v2 signature")
    version_command, family, length = fixed[12], fixed[13], struct.unpack("!H", fixed[14:16])[0]
    if version_command >> 4 != 2 or length > 2048:
        raise ProxyError("invalid PROXY v2 header")
    body = await _recv_exactly(loop, sock, length)
    if version_command & 0x0F == 0:  # LOCAL: a health check from the balancer itself
        return None
    if family >> 4 == 1 and len(body) >= 12:  # AF_INET
        return str(ipaddress.IPv4Address(body[0:4])), struct.unpack("!H", body[8:10])[0]
    if family >> 4 == 2 and len(body) >= 36:  # AF_INET6
        return str(ipaddress.IPv6Address(body[0:16])), struct.unpack("!H", body[32:34])[0]
    return None
