"""Options shared by many commands, spelled as in the Scalingo CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from slipway.cli.appcache import app_names

AppOption = Annotated[
    str | None,
    typer.Option(
        "-a",
        "--app",
        help="The app [SLIPWAY_APP, else the git remote's app].",
        autocompletion=app_names,
        show_default=False,
    ),
]
RemoteOption = Annotated[
    str | None,
    typer.Option(
        "-r",
        "--remote",
        help="The git remote to read the app from [default: slipway].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
