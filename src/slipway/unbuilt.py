"""Commands whose part is not built yet: listed in --help, but they say so and fail.

A command that is not built must never print fake output; it exits with status 1.
"""

from __future__ import annotations

import typer

NOT_BUILT_EXIT = 1


def add_unbuilt(app: typer.Typer, name: str, help_text: str) -> None:
    """Register ``name`` on ``app``: it accepts any arguments and exits 1, saying why."""

    @app.command(
        name,
        help=f"{help_text} (not implemented yet)",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def unbuilt(ctx: typer.Context) -> None:
        typer.echo(f"{ctx.command_path}: not implemented yet", err=True)
        raise typer.Exit(NOT_BUILT_EXIT)
