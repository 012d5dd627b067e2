"""The control plane under test: a real API server (uvicorn on a free port) over SQLite or a
private PostgreSQL, and the `slipway` CLI run as a subprocess, as a new user would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from slipway.api.app import create_app
from slipway.api.run import uvicorn_config
from slipway.config import Settings
from slipway.graceful import listen
from slipway.host.ports import free_port
from slipway.store import accounts
from slipway.store.db import Database
from slipway.store.migrate import migrate
from slipway.store.models import Base

SLIPWAY = Path(sys.executable).parent / "slipway"
INTERNAL_SECRET = "test-internal-secret-0123456789abcdefghijklmnopqrstuv"  # >= 32 bytes


def empty_database(database: Database) -> None:
    """Delete every row, keeping the schema (much faster than recreating it)."""
    with database.session() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@dataclass
class ApiServer:
    url: str
    database: Database
    settings: Settings

    def create_user(self, name: str, is_admin: bool = False) -> str:
        """A new user; returns an API token for it."""
        with self.database.session() as session:
            user = accounts.create_user(session, name, is_admin)
            return accounts.create_token(session, user).token

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def internal(self) -> httpx.Client:
        return self.client(INTERNAL_SECRET)


@contextmanager
def serve_api(
    database_url: str,
    data_dir: Path,
    repo_host: str = "local",
    api_docs: bool = False,
    redis_url: str | None = None,
) -> Iterator[ApiServer]:
    """The API in a thread, on uvicorn configured as in production (api.run.uvicorn_config)."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        ssh_port=2222,
        public_host="slipway.test",
        internal_secret=SecretStr(INTERNAL_SECRET),
        repo_host=repo_host,
        api_docs=api_docs,
        redis_url=redis_url,
    )
    database = Database(database_url)
    migrate(database.engine)
    port = free_port()
    sock = listen("127.0.0.1", port)
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings, database)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    try:
        yield ApiServer(f"http://127.0.0.1:{port}", database, settings)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        database.dispose()


@dataclass
class Cli:
    """`slipway` as a user runs it, in a home of its own."""

    home: Path
    api_url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLIPWAY_", "XDG_"))
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            COLUMNS="200",
            GIT_CONFIG_NOSYSTEM="1",
            **extra,
        )
        return env

    def run(
        self, *args: str, cwd: Path | None = None, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SLIPWAY), *args],
            cwd=cwd or self.home,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(**env),
        )

    def ok(self, *args: str, **kwargs: Any) -> str:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, f"slipway {' '.join(args)}: {result.stderr}"
        return result.stdout

    def fails(self, *args: str, **kwargs: Any) -> str:
        """The one-line error of a command that must fail."""
        result = self.run(*args, **kwargs)
        assert result.returncode != 0, f"slipway {' '.join(args)} succeeded: {result.stdout}"
        assert "Traceback" not in result.stderr
        return result.stderr
