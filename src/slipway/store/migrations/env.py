"""Alembic's entry point: runs migrations on the connection ``slipway.store.migrate`` gives."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from slipway.store.db import make_engine
from slipway.store.models import Base

# Serialises API hosts that start at once against one PostgreSQL (any constant key will do).
MIGRATION_LOCK = 0x51_1B_5A_7


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _migrate(connection)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=True
    )  # SQLite alters tables by copying them
    postgres = connection.dialect.name == "postgresql"
    with context.begin_transaction():
        if postgres:
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()


run()
