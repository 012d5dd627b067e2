"""Options shared by several `slipwayd` commands; each names its SLIPWAY_* variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where Slipway keeps its data [SLIPWAY_DATA_DIR].")
]
HttpPort = Annotated[
    int | None, typer.Option("--http-port", help="HTTP API port [SLIPWAY_HTTP_PORT, 8080].")
]
SshPort = Annotated[
    int | None, typer.Option("--ssh-port", help="SSH gateway port [SLIPWAY_SSH_PORT, 2222].")
]
RouterPort = Annotated[
    int | None,
    typer.Option("--router-port", help="Apps' HTTP port, the router [SLIPWAY_ROUTER_PORT, 8000]."),
]
RouterHttpsPort = Annotated[
    int | None,
    typer.Option(
        "--router-https-port",
        help="Apps' HTTPS port, the router [SLIPWAY_ROUTER_HTTPS_PORT, 8443].",
    ),
]
Host = Annotated[str | None, typer.Option("--host", help="Address to listen on [SLIPWAY_HOST].")]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis to use [SLIPWAY_REDIS_URL]; `up` starts its own."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL [SLIPWAY_DATABASE_URL, SQLite]."),
]
