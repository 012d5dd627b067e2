"""The gateway as a process: listen (or take over sockets), serve, upgrade on HUP, drain."""

from __future__ import annotations

import asyncio
import logging
import socket

from slipway.gateway.config import GatewayConfig
from slipway.gateway.metrics import serve_metrics
from slipway.gateway.server import Gateway
from slipway.graceful import listen, stop_accepting
from slipway.graceful.lifecycle import Lifecycle

log = logging.getLogger("slipway.gateway")


async def run_gateway(
    config: GatewayConfig, host: str, port: int, metrics_port: int = 0, max_drain: float = 3600.0
) -> None:
    # One line per packet, and per control-plane call, otherwise.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    lifecycle = Lifecycle("gateway", pid_file=config.data_dir / "gateway.pid")
    lifecycle.install_signal_handlers()
    gateway = Gateway(config)
    listener = lifecycle.listener("ssh", lambda: listen(host, port))
    tasks = [asyncio.create_task(gateway.serve(listener))]
    metrics: socket.socket | None = None
    if metrics_port:
        metrics = lifecycle.listener("metrics", lambda: listen(host, metrics_port))
        tasks.append(asyncio.create_task(serve_metrics(metrics, gateway.metrics.registry)))
    lifecycle.ready()
    log.info("SSH gateway listening on %s (API %s)", listener.getsockname(), config.api_url)
    await lifecycle.stopping.wait()
    # Accept no more; a successor, if any, holds the same sockets.
    await stop_accepting(tasks, (listener, metrics))
    await gateway.drain(max_drain)
    await gateway.close()
    lifecycle.exited()
    log.info("SSH gateway stopped")
