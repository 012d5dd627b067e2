"""``addons``: an app's databases and other services, made and removed by the platform."""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import typer

from slipway.cli.appname import app_path, detect_app
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, JsonOption, RemoteOption
from slipway.cli.output import console, show

ADDON_COLUMNS = ["id", "kind", "plan", "variables", "created_at"]

addons = typer.Typer(
    help="An app's add-ons: PostgreSQL and Redis, with their URLs in its config.",
    invoke_without_command=True,
)


@addons.callback()
def addons_default(
    ctx: typer.Context,
    app: AppOption = None,
    remote: RemoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """Without a subcommand: list the app's add-ons."""
    if ctx.invoked_subcommand is None:
        addons_list(app, remote, as_json)


@addons.command("list")
def addons_list(
    app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False
) -> None:
    """List the app's add-ons, with the config variables each one set."""
    found = Api.logged_in().call("GET", f"{app_path(detect_app(app, remote))}/addons")
    rows = [{**a, "variables": ", ".join(a["variables"])} for a in found]
    empty = "no add-ons: slipway addons add postgresql"
    show(found if as_json else rows, as_json, ADDON_COLUMNS, empty)


@addons.command("add")
def addons_add(
    kind: Annotated[str, typer.Argument(help="postgresql or redis.")],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            help="postgresql: dev (20 connections), standard (100), large (400); "
            "redis: dev (64 MB), standard (256 MB), large (1 GB). Default: dev.",
        ),
    ] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make an add-on for the app and set its URL in the app's config (DATABASE_URL and
    POSTGRESQL_URL, or REDIS_URL): a new release, deployed at once."""
    name = detect_app(app, remote)
    body = {"kind": kind} | ({"plan": plan} if plan else {})
    added = Api.logged_in().call("POST", f"{app_path(name)}/addons", json=body)
    if as_json:
        show(added, True)
        return
    console.print(
        f"Added {added['kind']} ({added['plan']}) as {added['id']} to {name}; "
        f"config: {', '.join(added['variables'])}"
    )
    if added["release_version"]:
        console.print(f"Release v{added['release_version']} is being deployed.")
    else:
        console.print("The app's next deploy gets it (it has no release yet).")


@addons.command("remove")
def addons_remove(
    addon_id: Annotated[str, typer.Argument(metavar="ID", help="ad-N, from `slipway addons`.")],
    app: AppOption = None,
    remote: RemoteOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Remove an add-on: its variables leave the app's config (a new release) and its data
    is deleted. Asks you to type the app's name, unless --yes."""
    name = detect_app(app, remote)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(f"removing {addon_id} deletes its data: add --yes to confirm")
        typed = typer.prompt(
            f"Removing {addon_id} of {name} deletes its data. Type the app's name to confirm"
        )
        if typed.strip() != name:
            raise CliError("the name does not match; nothing was removed")
    Api.logged_in().call(
        "DELETE", f"{app_path(name)}/addons/{quote(addon_id, safe='')}", params={"confirm": name}
    )
    console.print(f"Removed {addon_id} from {name}")
