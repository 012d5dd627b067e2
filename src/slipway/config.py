"""Settings for every Slipway server role, read from ``SLIPWAY_*`` variables.

One place for the defaults: each ``slipwayd`` subcommand builds a :class:`Settings`, passing
only the flags the user gave, so flags win over the environment, which wins over defaults.
"""

from __future__ import annotations

import os
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
    internal_secret: SecretStr | None = None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'slipway.db'}"


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags that were given (not None)."""
    return Settings(**{name: value for name, value in flags.items() if value is not None})
