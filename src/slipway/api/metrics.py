"""Prometheus metrics for the API: requests by route template, status and duration.

A pure ASGI wrapper: Starlette's BaseHTTPMiddleware costs a task per request. /metrics takes
the internal secret as a bearer token (Prometheus' `authorization` setting): it shows what
the API serves and how busy it is.
"""

from __future__ import annotations

import os
import time

from fastapi import Depends, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.api.auth import edge_service

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # set by `slipwayd api` for its workers


class RequestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app, so tests can build several
        self.requests = Counter(
            "slipway_api_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "slipway_api_request_duration_seconds",
            "Time to answer",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )


class MeasureRequests:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            # The router records the matched route in the scope it was given.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.durations.labels(scope["method"], route).observe(
                time.perf_counter() - started
            )


def install(app: FastAPI) -> None:
    metrics = RequestMetrics()
    app.add_middleware(MeasureRequests, metrics=metrics)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(edge_service)])
    async def serve_metrics() -> Response:
        registry = metrics.registry
        if MULTIPROCESS_VARIABLE in os.environ:  # several workers: sum what each counted
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
