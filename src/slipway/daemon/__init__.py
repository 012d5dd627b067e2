"""`slipwayd`: the server roles and the administration commands, one subcommand each.

A command imports its part only when it runs: `slipwayd gateway` never loads the API's web
framework, so it starts, and an upgrade's new version is ready, in a fraction of the time.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from slipway import __version__
from slipway.daemon import admin, servers, up

app = typer.Typer(
    name="slipwayd",
    help="Slipway servers and administration. Settings come from flags, else SLIPWAY_* "
    "variables (SLIPWAY_DATA_DIR, SLIPWAY_HTTP_PORT, SLIPWAY_SSH_PORT, SLIPWAY_REDIS_URL, "
    "SLIPWAY_DATABASE_URL), else defaults.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"slipwayd {__version__}")
        raise typer.Exit()


@app.callback()
def private_files(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Files Slipway writes hold secrets (token hashes, env values, keys): owner only."""
    os.umask(0o077)


app.command()(up.up)
app.command(no_args_is_help=False)(servers.worker)
app.command()(servers.api)
app.command()(servers.gateway)
app.command("git-shell")(servers.git_shell)
app.command()(servers.hook)
app.command()(servers.runner)
app.command("migrate")(admin.migrate_command)
app.add_typer(admin.admin, name="admin")
