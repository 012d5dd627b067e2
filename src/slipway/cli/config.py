"""The CLI's stored login: ``$XDG_CONFIG_HOME/slipway/config.json``, mode 0600.

``SLIPWAY_API_URL`` and ``SLIPWAY_API_TOKEN`` override it. A file we cannot read is reported,
never silently replaced.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from slipway.cli.errors import CliError


class StoredLogin(BaseModel):
    model_config = ConfigDict(extra="ignore")
    api_url: str | None = None
    token: str | None = None


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "slipway"


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> StoredLogin:
    """What is stored (empty if nothing is); CliError if the file is damaged."""
    path = config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return StoredLogin()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    try:
        return StoredLogin.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        raise CliError(
            f"{path} is damaged (not the JSON slipway writes); move it away or "
            "delete it, then run `slipway login` again"
        ) from None


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600, in a 0700 directory: a crash leaves the old file or the
    new one, and no other user ever reads a token or the apps we work on."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp creates it with mode 0600
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save(login: StoredLogin) -> Path:
    path = config_path()
    write_private(path, login.model_dump_json(indent=2) + "\n")
    return path


def normalize_api_url(given: str, source: str) -> str:
    """``given`` as an http(s) base URL. ``localhost:8080`` is taken as
    ``http://localhost:8080``, saying so on stderr (naming ``source``); anything else that is
    not http(s) with a host is refused here, rather than failing later with a puzzling
    connection error."""
    url = given.strip()
    has_scheme = "://" in url
    url = (url if has_scheme else "http://" + url).rstrip("/")
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise CliError(f"invalid API URL {given!r} in {source}: use http://HOST:PORT")
    if not has_scheme:
        print(f"slipway: {source} has no scheme: using {url}", file=sys.stderr)
    return url


def effective() -> StoredLogin:
    """The stored login with the environment's overrides applied."""
    env_url = os.environ.get("SLIPWAY_API_URL")
    env_token = os.environ.get("SLIPWAY_API_TOKEN")
    stored = load() if not (env_url and env_token) else StoredLogin()
    api_url = normalize_api_url(env_url, "SLIPWAY_API_URL") if env_url else stored.api_url
    return StoredLogin(api_url=api_url, token=env_token or stored.token)
