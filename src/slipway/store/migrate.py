"""Bringing a database to the latest schema with Alembic: once, one process at a time.

Several processes may start at once on one database (`slipwayd up` and an admin command,
several API hosts). On PostgreSQL an advisory lock serialises them (migrations/env.py); on
SQLite a file lock next to the database does. Under the lock, a database already at the
latest schema is left alone.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from slipway.host.filelock import exclusive

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _lock_file(engine: Engine) -> str | None:
    """Where SQLite migrations take turns: beside the database file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None  # PostgreSQL takes an advisory lock instead (migrations/env.py)
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    return f"{database}.migrate-lock"


def migrate(engine: Engine) -> bool:
    """Apply every migration not applied yet; True if there were some."""
    lock_file = _lock_file(engine)
    with exclusive(lock_file) if lock_file else nullcontext():
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
