"""Prometheus metrics of the gateway, served on a port of their own (it has no HTTP)."""

from __future__ import annotations

import asyncio
import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from slipway.graceful import accept_connections


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Counter(
            "slipway_gateway_connections", "TCP connections, by outcome", ["outcome"], registry=r
        )
        self.open_connections = Gauge(
            "slipway_gateway_open_connections", "Connections open now", registry=r
        )
        self.auth_failures = Counter(
            "slipway_gateway_auth_failures",
            "Failed public key attempts, by reason",
            ["reason"],
            registry=r,
        )
        self.sessions = Counter(
            "slipway_gateway_sessions",
            "Sessions, by verb and outcome",
            ["verb", "outcome"],
            registry=r,
        )
        self.durations = Histogram(
            "slipway_gateway_session_duration_seconds",
            "How long sessions last",
            ["verb"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
        )
        self.bytes = Counter(
            "slipway_gateway_bytes", "Bytes piped, by direction", ["direction"], registry=r
        )


async def serve_metrics(listener: socket.socket, registry: CollectorRegistry) -> None:
    """GET /metrics (Prometheus) and /healthz on a socket that upgrades can hand over."""

    async def answer(sock: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = request.split(b" ")[1] if request.count(b" ") >= 2 else b""
            if path == b"/metrics":
                status, kind, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(registry)
            elif path == b"/healthz":
                status, kind, body = "200 OK", "text/plain", b"ok\n"
            else:
                status, kind, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    answering: set[asyncio.Task[None]] = set()

    def start(sock: socket.socket, peer: object) -> None:
        task = asyncio.get_running_loop().create_task(answer(sock))
        answering.add(task)
        task.add_done_callback(answering.discard)

    try:
        await accept_connections(listener, start)
    finally:  # stopped: the connections accepted so far still get their answer
        if answering:
            await asyncio.wait(answering, timeout=10)
