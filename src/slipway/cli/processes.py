"""``ps``, ``scale``, ``restart`` and ``open``: an app's processes, as its runners report
them, and the changes that replace them with no downtime."""

from __future__ import annotations

import os
import re
import sys
import time
import webbrowser
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from slipway.cli.appname import app_path, detect_app
from slipway.cli.completion import process_names, scale_targets
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
        list[str],
        typer.Argument(
            metavar="TYPE=COUNT...",
            help="e.g. web=2 worker=1 (or web:2).",
            autocompletion=scale_targets,
        ),
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
        typer.Argument(
            metavar="[TYPE|INSTANCE]...",
            help="web, web.1...; none: all of them.",
            autocompletion=process_names,
        ),
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


STATS_EVERY = 2.0  # seconds between refreshes (the runner samples as often)


def _mb(size: int | None) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size is not None else "-"


def _stats_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": s["name"],
            "cpu": f"{s['cpu_percent']:.1f}%",
            "memory": _mb(s["memory"]),
            "peak": _mb(s["memory_peak"]),
            "of limit": (
                f"{100 * s['memory'] / s['memory_limit']:.0f}% of {_mb(s['memory_limit'])}"
                if s["memory_limit"]
                else "no limit"
            ),
            "restarts": s["restarts"],
        }
        for s in found
    ]


def stats(
    stream: Annotated[
        bool, typer.Option("--stream", help="Refresh every 2 s until Ctrl-C.")
    ] = False,
    app: AppOption = None,
    remote: RemoteOption = None,
    as_json: JsonOption = False,
) -> None:
    """CPU and memory of each process (current, peak, share of its limit) and restarts,
    as its runner samples them."""
    api = Api.logged_in()
    path = f"{app_path(detect_app(app, remote))}/stats"
    columns = ["name", "cpu", "memory", "peak", "of limit", "restarts"]
    if not stream or as_json:
        found = api.call("GET", path)
        show(found if as_json else _stats_rows(found), as_json, columns, "no processes run")
        return
    if not sys.stdout.isatty():  # a line per process and sample, for a pipe or a file
        while True:
            for row in _stats_rows(api.call("GET", path)):
                print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
            time.sleep(STATS_EVERY)
    with Live(_table(api.call("GET", path), columns), auto_refresh=False) as live:
        while True:
            time.sleep(STATS_EVERY)
            live.update(_table(api.call("GET", path), columns), refresh=True)


def _table(found: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(*[column.upper() for column in columns], box=None)
    for row in _stats_rows(found):
        table.add_row(*[str(row[column]) for column in columns])
    return table
