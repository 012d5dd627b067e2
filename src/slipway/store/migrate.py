"""Bringing a database to the latest schema with Alembic: once, one process at a time.

Several processes may start at once on one database (`slipwayd up` and an admin command,
several API hosts). On PostgreSQL an advisory lock serialises them (migrations/env.py); on
SQLite a file lock next to the database does. Under the lock, a database already at the
latest schema is left alone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def migrate(engine: Engine) -> bool:
    """Apply every migration not applied yet; True if there were some."""
    with _sqlite_lock(engine):
        if is_current(engine):
            return False
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    return True


def is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
