"""Running the gateway as a process: listen, serve, stop cleanly on TERM/INT."""

from __future__ import annotations

import asyncio
import logging
import signal

from slipway.gateway.server import Gateway, GatewayConfig, listen

log = logging.getLogger("slipway.gateway")


async def run_gateway(config: GatewayConfig, host: str, port: int, metrics_port: int = 0) -> None:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per packet otherwise
    gateway = Gateway(config)
    if metrics_port:
        gateway.metrics.serve(host, metrics_port)
    listener = listen(host, port)
    serving = asyncio.create_task(gateway.serve(listener))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("SSH gateway listening on %s:%d (API %s)", host, port, config.api_url)
    await stop.wait()
    serving.cancel()
    listener.close()
    await gateway.close()
    log.info("SSH gateway stopped")
