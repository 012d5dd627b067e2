"""Shell completion: commands and flags from Click; app names come from slipway.cli.appcache,
process names from the app's `ps`."""

from __future__ import annotations

import typer
from typer.completion import (  # type: ignore[attr-defined]  # re-exported there
    completion_init,
    get_completion_script,
)

from slipway.cli.errors import CliError


def setup_completion() -> None:
    """Let the shell's completion requests (``_SLIPWAY_COMPLETE``) reach Typer."""
    completion_init()


def script(shell: str, program: str = "slipway") -> str:
    if shell not in ("bash", "zsh", "fish"):
        raise CliError(f"no completion for {shell!r}: use bash, zsh or fish")
    return get_completion_script(
        prog_name=program, complete_var=f"_{program.upper()}_COMPLETE", shell=shell
    )


def _processes(ctx: typer.Context) -> list[dict[str, str]]:
    """The app's processes, for completing their names (none when anything fails)."""
    from slipway.cli.appname import app_path, detect_app
    from slipway.cli.http import Api

    try:
        app = detect_app(ctx.params.get("app"), ctx.params.get("remote"))
        return list(Api.logged_in().call("GET", f"{app_path(app)}/ps"))
    except (CliError, OSError):
        return []


def process_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Process types and instances (``web``, ``web.1``) of the app, for -F and restart."""
    found = _processes(ctx)
    names = sorted({p["type"] for p in found} | {p["name"] for p in found})
    return [name for name in names if name.startswith(incomplete)]


def scale_targets(ctx: typer.Context, incomplete: str) -> list[str]:
    """``TYPE=`` for each process type the app runs, for scale."""
    types = sorted({p["type"] for p in _processes(ctx)})
    return [f"{kind}=" for kind in types if f"{kind}=".startswith(incomplete)]
