"""``slipway logs``: an app's log, the last lines then (``-f``) new ones as they come,
reconnecting by itself from the last line it showed when the connection drops."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from slipway.cli.appname import app_path, detect_app
from slipway.cli.completion import process_names
from slipway.cli.errors import CliError
from slipway.cli.http import Api
from slipway.cli.options import AppOption, RemoteOption

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
COLOURS = {"app": "\033[36m", "router": "\033[35m", "slipway": "\033[33m"}  # cyan, magenta...
RESET = "\033[0m"
RECONNECT_MAX = 10.0  # seconds between attempts, at most


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s`` ago, or an RFC 3339 time."""
    found = DURATION.match(text.strip())
    if found:
        amount, unit = found.groups()
        return (now or datetime.now(UTC)) - timedelta(**{UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--since {text!r}: use a duration (30s, 10m, 2h, 1d) or an RFC 3339 time "
            "(2026-11-27T10:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def line_of(entry: dict[str, Any], colour: bool) -> str:
    """Heroku's format: ``TIME SOURCE[INSTANCE]: message``."""
    source, instance = entry["source"], entry["instance"]
    if source == "app":
        label = f"app[{instance}]"
    elif source == "router":
        label = "slipway[router]"
    else:
        label = f"slipway[{instance or 'runner'}]"
    if colour:
        label = f"{COLOURS.get(source, '')}{label}{RESET}"
    return f"{entry['time']} {label}: {entry['message']}"


def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="The last lines.")] = 100,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Then follow new lines until Ctrl-C.")
    ] = False,
    filter_: Annotated[
        str | None,
        typer.Option(
            "-F",
            "--filter",
            help='Process types or instances: web, web.1, "worker|clock".',
            autocompletion=process_names,
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From then on: 10m, 2h, 1d or an RFC 3339 time.")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Only app, router or slipway lines (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    app: AppOption = None,
    remote: RemoteOption = None,
) -> None:
    """Show the app's logs: its processes' output, the router's requests and the
    platform's events (TIME SOURCE[INSTANCE]: message)."""
    api = Api.logged_in()
    path = f"{app_path(detect_app(app, remote))}/logs"
    params: dict[str, Any] = {"lines": lines, "follow": "true" if follow else "false"}
    if filter_:
        params["filter"] = filter_
    if since:
        params["since"] = parse_since(since).isoformat()
    if source:
        params["source"] = source
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ and not as_json
    import httpx  # once the API is called (0.2 s to import)

    wait = 0.5
    while True:
        try:
            for entry in _entries(api, path, params):
                params["after"] = entry["id"]  # a reconnection resumes after it
                wait = 0.5
                print(json.dumps(entry) if as_json else line_of(entry, colour), flush=True)
            if not follow:
                return
        except httpx.TransportError as error:
            if not follow:
                raise CliError(f"cannot reach the Slipway API at {api.api_url}: {error}") from None
            print(f"slipway: connection lost ({error}); reconnecting", file=sys.stderr)
        time.sleep(wait)
        wait = min(wait * 2, RECONNECT_MAX)


def _entries(api: Api, path: str, params: dict[str, Any]) -> Any:
    """The streamed NDJSON lines, parsed; keep-alive (empty) lines skipped."""
    import httpx

    with api.http.stream(
        "GET", path, params=params, timeout=httpx.Timeout(60.0, connect=5.0)
    ) as response:
        if not response.is_success:
            response.read()
            api.raise_for(response, path)
        for raw in response.iter_lines():
            if raw.strip():
                yield json.loads(raw)
