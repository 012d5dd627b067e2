"""``db-tunnel``: a local port forwarded through the SSH gateway to one of the app's add-ons
(an SSH ``direct-tcpip`` channel per local connection, as ``ssh -L`` opens them).

The SSH client is asyncssh: the gateway's host key is checked against ~/.ssh/known_hosts
(asked about on first use, with its fingerprint, as ssh does), keys come from the agent,
-i or ~/.ssh, and ~/.ssh/config's settings for the host apply. A dropped connection is made
again by the next local connection, or within seconds in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

import asyncssh
import typer

from slipway.cli.appname import detect_app
from slipway.cli.apps import app_path
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, RemoteOption

DEFAULT_PORT = 10000  # Scalingo's
CHUNK = 256 * 1024
RECONNECT_EVERY = (1, 2, 5, 10)  # seconds between attempts, the last one repeated
KNOWN_HOSTS = Path("~/.ssh/known_hosts")
DEFAULT_PORTS = {"postgresql": 5432, "redis": 6379}
# OpenSSH's order: the key asked about is the one ssh would show.
HOST_KEY_ORDER = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]


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
        asyncio.run(tunnel.serve(port, lambda bound: announce(chosen, url, bound, show_password)))
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
        credentials = f"{quote(user, safe='')}:{secret}@" if password else ""
        if user and not password:
            credentials = f"{quote(user, safe='')}@"
        shown = f"{parts.scheme}://{credentials}{local}{parts.path}"
    else:
        shown = f"{addon['kind']} at {local}"
    print(f"Tunnel to {addon['id']} ({addon['kind']}) open on {local}", flush=True)
    print(f"  {shown}", flush=True)
    if url and not show_password:
        print("  (the password is in the app's config; --show-password prints it)", flush=True)
    print("Ctrl-C closes it.", flush=True)


class Tunnel:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        destination: str,
        destination_port: int,
        identity: Path | None,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.destination, self.destination_port = destination, destination_port
        self.identity = identity
        self.connection: asyncssh.SSHClientConnection | None = None
        self._connecting = asyncio.Lock()

    async def serve(self, local_port: int, ready: Any) -> None:
        await self.connect()
        try:
            server = await asyncio.start_server(self._forward, "127.0.0.1", local_port)
        except OSError as error:
            raise CliError(
                f"cannot listen on 127.0.0.1:{local_port}: {error.strerror}; choose another "
                "port with -p (0: any free one)"
            ) from None
        ready(server.sockets[0].getsockname()[1])
        async with server:
            await asyncio.gather(server.serve_forever(), self._keep_connected())

    async def connect(self) -> asyncssh.SSHClientConnection:
        """The connection, made again if it dropped."""
        async with self._connecting:
            if self.connection is not None and not self.connection.is_closed():
                return self.connection
            options: dict[str, Any] = {
                "username": self.username,
                "keepalive_interval": 15,
                "keepalive_count_max": 3,
            }
            if self.identity is not None:
                options["client_keys"] = [str(self.identity)]
            try:
                self.connection = await asyncssh.connect(self.host, self.port, **options)
            except asyncssh.HostKeyNotVerifiable:
                await trust_on_first_use(self.host, self.port)
                self.connection = await asyncssh.connect(self.host, self.port, **options)
            except asyncssh.PermissionDenied:
                raise CliError(
                    "the gateway refused your keys: add yours with `slipway keys add`"
                ) from None
            except (OSError, asyncssh.Error) as error:
                raise CliError(
                    f"cannot reach the gateway at {self.host}:{self.port}: {error}"
                ) from None
            return self.connection

    async def _keep_connected(self) -> None:
        """Reconnect in the background after a drop, so the next connection is quick."""
        attempt = 0
        while True:
            connection = self.connection
            if connection is not None:
                await connection.wait_closed()
                print("slipway: connection to the gateway lost; reconnecting", file=sys.stderr)
            try:
                await self.connect()
                if attempt:
                    print("slipway: reconnected", file=sys.stderr)
                attempt = 0
            except CliError as error:
                delay = RECONNECT_EVERY[min(attempt, len(RECONNECT_EVERY) - 1)]
                print(f"slipway: {error.message}; again in {delay} s", file=sys.stderr)
                attempt += 1
                self.connection = None
                await asyncio.sleep(delay)

    async def _forward(
        self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter
    ) -> None:
        try:
            connection = await self.connect()
            remote_reader, remote_writer = await connection.open_connection(
                self.destination, self.destination_port
            )
        except asyncssh.ChannelOpenError as refusal:
            print(f"slipway: the gateway refused the tunnel: {refusal.reason}", file=sys.stderr)
            local_writer.close()
            return
        except (CliError, OSError, asyncssh.Error) as error:
            print(f"slipway: {getattr(error, 'message', error)}", file=sys.stderr)
            local_writer.close()
            return
        await asyncio.gather(_copy(local_reader, remote_writer), _copy(remote_reader, local_writer))


async def _copy(reader: Any, writer: Any) -> None:
    """One direction, until its end (then the other side sees EOF)."""
    with contextlib.suppress(OSError, asyncssh.Error, ConnectionError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
            return
    writer.close()


async def trust_on_first_use(host: str, port: int) -> None:
    """Ask, as ssh does, before trusting a gateway seen for the first time; remember it."""
    try:
        key = await asyncssh.get_server_host_key(host, port, server_host_key_algs=HOST_KEY_ORDER)
    except (OSError, asyncssh.Error) as error:
        raise CliError(f"cannot reach the gateway at {host}:{port}: {error}") from None
    if key is None:
        raise CliError(f"the gateway at {host}:{port} showed no host key")
    await asyncio.to_thread(accept_host_key, host if port == 22 else f"[{host}]:{port}", key)


def accept_host_key(name: str, key: asyncssh.SSHKey) -> None:
    fingerprint = key.get_fingerprint("sha256")
    path = KNOWN_HOSTS.expanduser()
    with contextlib.suppress(OSError):
        if any(line.split(" ", 1)[0] == name for line in path.read_text().splitlines()):
            raise CliError(
                f"the gateway {name}'s host key does not match {path}: it is now "
                f"{fingerprint}. If the platform's keys changed, remove the old line; if not, "
                "someone may be in between: do not connect"
            )
    print(
        f"The gateway {name} is not in {KNOWN_HOSTS}.\n"
        f"Its {key.get_algorithm()} key fingerprint is {fingerprint}\n"
        "(`slipwayd up` prints the fingerprints of its keys when it starts.)",
        file=sys.stderr,
    )
    if not sys.stdin.isatty():
        raise CliError(
            f"unknown host key {fingerprint}: run once in a terminal to accept it, or add "
            f"the gateway to {KNOWN_HOSTS}"
        )
    answer = input("Are you sure you want to continue connecting (yes/no)? ").strip().lower()
    if answer != "yes":
        raise CliError("host key not accepted: nothing was opened")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a") as known_hosts:
        known_hosts.write(line)
    print(f"Added {name} to {path}.", file=sys.stderr)
