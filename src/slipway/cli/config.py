"""The CLI's stored login: ``$XDG_CONFIG_HOME/slipway/config.json``, mode 0600.

``SLIPWAY_API_URL`` and ``SLIPWAY_API_TOKEN`` override it. A file we cannot read is reported,
never silently replaced.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

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


def save(login: StoredLogin) -> Path:
    """Write atomically with mode 0600 (a crash leaves the old file or the new one)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp creates it with mode 0600
            file.write(login.model_dump_json(indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def effective() -> StoredLogin:
    """The stored login with the environment's overrides applied."""
    env_url = os.environ.get("SLIPWAY_API_URL")
    env_token = os.environ.get("SLIPWAY_API_TOKEN")
    stored = load() if not (env_url and env_token) else StoredLogin()
    return StoredLogin(api_url=env_url or stored.api_url, token=env_token or stored.token)
