"""Prometheus metrics of the gateway, served on a port of their own (it has no HTTP)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


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

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, host, registry=self.registry)
