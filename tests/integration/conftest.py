"""A real API server per backend (SQLite, and the private PostgreSQL), emptied per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control_support import ApiServer, Cli, empty_database, serve_api
from tests.services import Postgres

BACKENDS = ["sqlite", "postgresql"]


def database_url(backend: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'slipway.db'}"
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.url


@pytest.fixture(scope="session", params=BACKENDS)
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    with serve_api(database_url(request.param, tmp, request), tmp / "data") as server:
        yield server


@pytest.fixture
def api(api_server: ApiServer) -> ApiServer:
    """The API on each backend, with an empty store."""
    empty_database(api_server.database)
    return api_server


@pytest.fixture(scope="session")
def sqlite_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("api-cli")
    with serve_api(f"sqlite:///{tmp / 'slipway.db'}", tmp / "data") as server:
        yield server


@pytest.fixture
def sqlite_api(sqlite_api_server: ApiServer) -> ApiServer:
    """The API on SQLite only, with an empty store (for tests where the backend is moot)."""
    empty_database(sqlite_api_server.database)
    return sqlite_api_server


@pytest.fixture
def cli(sqlite_api: ApiServer, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home, sqlite_api.url)
