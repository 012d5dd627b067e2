"""Which app a command is about: ``-a/--app``, else ``SLIPWAY_APP``, else the URL of the git
remote named by ``-r/--remote`` (default ``slipway``) in the enclosing repository."""

from __future__ import annotations

import os
import re
import subprocess
from urllib.parse import quote

from slipway.cli.errors import CliError

DEFAULT_REMOTE = "slipway"
# ssh://git@host:2222/name.git, git@host:name.git, and the same without .git
_REMOTE_APP = re.compile(r"[:/](?P<app>[a-z][a-z0-9-]*[a-z0-9])(?:\.git)?/?$")


def git(*args: str) -> str | None:
    """Output of a git command in the current directory, or None if it fails."""
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def app_from_remote_url(url: str) -> str | None:
    match = _REMOTE_APP.search(url.strip())
    return match.group("app") if match else None


def detect_app(app: str | None, remote: str | None) -> str:
    if app:
        return app
    if env_app := os.environ.get("SLIPWAY_APP"):
        return env_app
    name = remote or DEFAULT_REMOTE
    if git("rev-parse", "--git-dir") is None:
        raise CliError(
            "which app? give -a APP, set SLIPWAY_APP, or run this inside the app's git repository"
        )
    url = git("config", "--get", f"remote.{name}.url")
    if not url:  # a missing remote, or one without a URL
        raise CliError(
            f"which app? this repository has no git remote {name!r} with a URL; "
            "give -a APP, or -r REMOTE for another remote"
        )
    found = app_from_remote_url(url)
    if found is None:
        raise CliError(f"cannot tell the app from the URL of remote {name!r}: {url}")
    return found


def app_path(app: str) -> str:
    """The app's resource in the API."""
    return f"/v1/apps/{quote(app, safe='')}"
