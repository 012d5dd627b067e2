"""Settings for every Slipway server role, read from ``SLIPWAY_*`` variables.

One place for the defaults: each ``slipwayd`` subcommand builds a :class:`Settings`, passing
only the flags the user gave, so flags win over the environment, which wins over defaults.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "slipway"


class Settings(BaseSettings):
    """Where a Slipway server keeps its data, listens, and finds Redis and its database."""

    model_config = SettingsConfigDict(env_prefix="SLIPWAY_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    ssh_port: int = Field(default=2222, ge=1, le=65535)
    # None: `slipwayd up` starts a private redis-server in the data dir.
    redis_url: str | None = None
    # None: a SQLite file in the data dir.
    database_url: str | None = None
    # Shared by the API and the edge services (gateway, repo hosts) for /internal; generated
    # into the data dir on first start when unset.
    internal_secret: SecretStr | None = None
    # The host name users reach the gateway and API by (git remotes); default: `host`, or
    # this machine's name when `host` listens everywhere.
    public_host: str | None = None
    # Where the API says repositories live: "local" (the gateway's own host, the embedded
    # default) or a repo host the gateways reach over SSH, as user@host:port.
    repo_host: str = "local"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'slipway.db'}"

    @property
    def effective_public_host(self) -> str:
        if self.public_host:
            return self.public_host
        return socket.getfqdn() if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104

    @property
    def repositories_dir(self) -> Path:
        return self.data_dir / "repos"

    def effective_internal_secret(self) -> str:
        """The configured secret, else the one in the data dir, created (mode 0600) if needed."""
        if self.internal_secret is not None:
            return self.internal_secret.get_secret_value()
        path = self.data_dir / "internal_secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process is creating it: use theirs once written
            for _ in range(100):
                if secret := path.read_text().strip():
                    return secret
                time.sleep(0.01)
            raise RuntimeError(f"{path} stays empty; remove it and start again") from None
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
        return secret


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags that were given (not None)."""
    return Settings(**{name: value for name, value in flags.items() if value is not None})
