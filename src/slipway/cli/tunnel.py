"""``db-tunnel``: a local port forwarded through the SSH gateway to one of the app's add-ons
(an SSH ``direct-tcpip`` channel per local connection, as ``ssh -L`` opens them).

The SSH client is asyncssh: the gateway's host key is checked against ~/.ssh/known_hosts
(asked about on first use, with its fingerprint, as ssh does), keys come from the agent,
-i or ~/.ssh, and ~/.ssh/config's settings for the host apply. A dropped connection is made
again by the next local connection, or within seconds in the background.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

import typer

from slipway.cli.appname import app_path, detect_app
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, RemoteOption

DEFAULT_PORT = 10000  # Scalingo's
DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379}


def db_tunnel(
    addon: Annotated[
        str | None,
        typer.Argument(
            metavar="[ADDON_OR_VARIABLE]",
            help="ad-N or a variable it set (DATABASE_URL, REDIS_URL); default: the first.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option("-p", "--port", min=0, max=65535, help="The local port (0: any free one)."),
    ] = DEFAULT_PORT,
    identity: Annotated[
        Path | None,
        typer.Option(
            "-i", "--identity", help="A private key file (default: the agent, ~/.ssh keys)."
        ),
    ] = None,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the URL with its password.")
    ] = False,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Open a local port to the app's database through the SSH gateway, print the URL to
    connect with, and keep it open until Ctrl-C."""
    name = detect_app(app, remote)
    api = Api.logged_in()
    found = api.call("GET", app_path(name))
    addons = api.call("GET", f"{app_path(name)}/addons")
    chosen = choose(name, addons, addon)
    env = api.call("GET", f"{app_path(name)}/env")["env"]
    gateway = urlsplit(found["git_remote"])
    if identity is not None and not identity.is_file():
        raise CliError(f"no key file at {identity}")
    import uvloop

    from slipway.cli.tunnel_client import Tunnel, keep_freed_memory  # asyncssh: 0.3 s

    keep_freed_memory()
    tunnel = Tunnel(
        host=gateway.hostname or "127.0.0.1",
        port=gateway.port or 22,
        username=gateway.username or "git",
        destination=chosen["tunnel"],
        destination_port=DEFAULT_PORTS.get(chosen["kind"], 5432),
        identity=identity,
    )
    variable = chosen["variables"][0] if chosen["variables"] else None
    try:
        url = env.get(variable or "")
        # uvloop: reads into a buffer of its own and runs the protocols' callbacks in C,
        # which makes the tunnel about 15 % faster than asyncio's loop (bench/tunnel.py).
        uvloop.run(tunnel.serve(port, lambda bound: announce(chosen, url, bound, show_password)))
    except KeyboardInterrupt:
        print("Tunnel closed.", file=sys.stderr)


def choose(app: str, addons: list[dict[str, Any]], wanted: str | None) -> dict[str, Any]:
    if not addons:
        raise CliError(f"{app} has no add-on: slipway addons add postgresql -a {app}")
    for addon in addons:
        if wanted is None or wanted == addon["id"] or wanted in addon["variables"]:
            return addon
    known = ", ".join(f"{a['id']} ({', '.join(a['variables'])})" for a in addons)
    raise CliError(f"{app} has no add-on {wanted!r}: it has {known}")


def announce(addon: dict[str, Any], url: str | None, port: int, show_password: bool) -> None:
    """The add-on's URL, pointing to the local port."""
    local = f"127.0.0.1:{port}"
    if url:
        parts = urlsplit(url)
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        secret = quote(password, safe="") if show_password else "PASSWORD"
        credentials = quote(user, safe="") + (f":{secret}" if password else "")
        credentials += "@" if credentials else ""
        shown = f"{parts.scheme}://{credentials}{local}{parts.path}"
    else:
        shown = f"{addon['kind']} at {local}"
    print(f"Tunnel to {addon['id']} ({addon['kind']}) open on {local}", flush=True)
    print(f"  {shown}", flush=True)
    if url and not show_password:
        print("  (the password is in the app's config; --show-password prints it)", flush=True)
    print("Ctrl-C closes it.", flush=True)
