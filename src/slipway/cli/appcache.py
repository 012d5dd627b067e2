"""The app names the shell completes: the user's apps, cached for a short while (a completion
runs at every Tab), refreshed from the API when stale, and written by `slipway apps` too."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

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
