"""The hot lookups (Database.read): autocommit connections without a ping, which find a
connection the server closed by using it, and then read again on a new one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from slipway.store import accounts
from slipway.store.db import Database
from slipway.store.migrate import migrate
from tests.control_support import empty_database
from tests.integration.conftest import BACKENDS, database_url
from tests.services import Postgres


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = Database(database_url(request.param, tmp_path, request))
    migrate(db.engine)
    empty_database(db)
    try:
        yield db
    finally:
        db.dispose()


def backend_pid(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_read_sees_what_was_committed_and_opens_no_transaction(database: Database) -> None:
    with database.session() as session:
        accounts.create_user(session, "ada")
    names = database.read(lambda c: c.execute(text("SELECT name FROM users")).scalars().all())
    assert names == ["ada"]
    assert database.read(lambda c: c.in_transaction() and c.get_isolation_level()) in (
        False,
        "AUTOCOMMIT",
    )


def test_a_read_survives_the_server_closing_its_connection(postgres: Postgres) -> None:
    database = Database(postgres.url)
    first = database.read(backend_pid)
    with database.engine.connect() as admin:  # as a server restart would
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    second = database.read(backend_pid)  # no error: found closed, read again
    assert second != first
    database.dispose()


def test_a_read_that_fails_for_another_reason_is_not_repeated(database: Database) -> None:
    calls = []

    def broken(connection: Connection) -> object:
        calls.append(1)
        return connection.execute(text("SELECT no_such_column FROM users")).all()

    with pytest.raises((OperationalError, ProgrammingError)):
        database.read(broken)
    assert calls == [1]
