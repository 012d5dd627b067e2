"""``ps``, ``scale``, ``restart`` and ``open``: an app's processes, as its runners report
them, and the changes that replace them with no downtime."""

from __future__ import annotations

import os
import re
import sys
import webbrowser
from datetime import datetime
from typing import Annotated, Any

import typer

from slipway.cli.appname import detect_app
from slipway.cli.apps import app_path
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, JsonOption, RemoteOption
from slipway.cli.output import show

SCALE = re.compile(r"^([A-Za-z0-9_-]+)[=:]([0-9]+)$")  # web=2, also web:2 (Scalingo)
PS_COLUMNS = ["name", "state", "release", "since", "restarts", "host"]


def ps(app: AppOption = None, remote: RemoteOption = None, as_json: JsonOption = False) -> None:
    """List the app's processes: name, state (starting, up, crashed, stopping), release,
    since when, restarts and host."""
    api = Api.logged_in()
    found = api.call("GET", f"{app_path(detect_app(app, remote))}/ps")
    if as_json:
        show(found, True)
        return
    rows = [
        {
            **p,
            "release": f"v{p['release']}",
            "since": datetime.fromisoformat(p["since"]).astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            "state": p["state"] + (f" ({p['last_exit']})" if p["state"] == "crashed" else ""),
        }
        for p in found
    ]
    show(rows, False, PS_COLUMNS, "no processes run: git push the app, or slipway scale web=1")


def scale(
    changes: Annotated[
        list[str], typer.Argument(metavar="TYPE=COUNT...", help="e.g. web=2 worker=1 (or web:2).")
    ],
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Change how many processes of each type run (0 stops a type); new ones take traffic
    once they listen, extra ones leave the router before they stop."""
    formation: dict[str, int] = {}
    for change in changes:
        found = SCALE.match(change)
        if found is None:
            raise CliError(f"{change!r}: use TYPE=COUNT, e.g. web=2")
        formation[found.group(1)] = int(found.group(2))
    api = Api.logged_in()
    now = api.call(
        "PATCH", f"{app_path(detect_app(app, remote))}/formation", json={"formation": formation}
    )["formation"]
    print("Scaling to " + " ".join(f"{kind}={count}" for kind, count in now.items()))


def restart(
    scope: Annotated[
        list[str] | None,
        typer.Argument(metavar="[TYPE|INSTANCE]...", help="web, web.1...; none: all of them."),
    ] = None,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Restart the app's processes (all, some types or some instances): each new one takes
    traffic before the one it replaces stops."""
    api = Api.logged_in()
    api.call("POST", f"{app_path(detect_app(app, remote))}/restart", json={"scope": scope or []})
    what = ", ".join(scope) if scope else "every process"
    print(f"Restarting {what}: new ones take traffic once they listen (slipway ps shows them)")


def open_app(app: AppOption = None, remote: RemoteOption = None) -> None:
    """Print the app's URL, and open it in a browser where there is one."""
    api = Api.logged_in()
    found: dict[str, Any] = api.call("GET", app_path(detect_app(app, remote)))
    print(found["url"])
    if sys.stdout.isatty() and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        webbrowser.open(found["url"])  # a desktop's browser, not a terminal one
