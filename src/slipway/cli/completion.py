"""Shell completion: commands and flags from Click, and app names from a short-lived cache."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import typer
from typer.completion import (  # type: ignore[attr-defined]  # re-exported there
    completion_init,
    get_completion_script,
)

from slipway.cli.config import write_private
from slipway.cli.errors import CliError

CACHE_TTL = 30.0  # seconds an app list stays fresh


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "slipway" / "apps.json"


def remember_apps(api_url: str, names: list[str]) -> None:
    """Private like the login (app names are not for other users), and replaced atomically so
    that a completion running meanwhile never reads half a file."""
    with contextlib.suppress(OSError):  # a cache: never worth an error
        write_private(
            cache_path(), json.dumps({"api_url": api_url, "at": time.time(), "apps": names})
        )


def app_names(incomplete: str) -> list[str]:
    """Apps whose name starts with ``incomplete``: from the cache, refreshed when stale."""
    from slipway.cli.http import Api  # only when completing

    try:
        cached = json.loads(cache_path().read_text())
        fresh = time.time() - float(cached["at"]) < CACHE_TTL
        names: list[str] | None = cached["apps"] if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        names = None
    if names is None:
        try:
            api = Api.logged_in()
            names = [app["name"] for app in api.pages("/v1/apps")]
            remember_apps(api.api_url, names)
        except CliError:
            return []
    return [name for name in names if name.startswith(incomplete)]


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
    from slipway.cli.appname import detect_app
    from slipway.cli.apps import app_path
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
