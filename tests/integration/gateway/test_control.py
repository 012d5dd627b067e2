"""The gateway's calls to the API survive the API closing a kept-alive connection (what an
API upgrade does), and fail closed when the API is really gone."""

from __future__ import annotations

import asyncio
import json

import pytest

from slipway.gateway.control import ControlPlane, ControlPlaneError

OWNER = {"user": "alice", "key": "laptop", "fingerprint": "SHA256:x"}


async def _api_closing_after_one_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answers the first request with keep-alive, then drops the connection on the next one."""
    await reader.readuntil(b"\r\n\r\n")
    body = json.dumps(OWNER).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def test_a_closed_kept_alive_connection_is_retried_once() -> None:
    server = await asyncio.start_server(_api_closing_after_one_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    control = ControlPlane(f"http://127.0.0.1:{port}", "secret")
    try:
        assert await control.key_owner("SHA256:first") is not None
        # The next call goes out on the same connection, which the server drops unanswered.
        second = await control.key_owner("SHA256:second")
        assert second is not None and second.user == "alice"
    finally:
        await control.aclose()
        server.close()


async def test_an_api_that_is_gone_is_an_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    control = ControlPlane(f"http://127.0.0.1:{port}", "secret", timeout=2)
    try:
        with pytest.raises(ControlPlaneError, match="unreachable"):
            await control.key_owner("SHA256:first")
    finally:
        await control.aclose()
