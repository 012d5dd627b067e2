"""Engines and sessions: SQLite (WAL, foreign keys on) or PostgreSQL, same code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from slipway.store.errors import Conflict

T = TypeVar("T")

MAX_CONNECTIONS = 40  # per engine: matches the API's threads for blocking endpoints


READ_CONNECTIONS = 4


def make_engine(url: str, max_connections: int = MAX_CONNECTIONS, **options: Any) -> Engine:
    """An engine keeping up to half ``max_connections`` open, opening the rest when busy."""
    parsed = make_url(url)
    pool = {"pool_size": max(1, max_connections // 2), "max_overflow": max_connections // 2}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool, **options
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))  # psycopg 3, not psycopg2
    return create_engine(url, **pool, **{"pool_pre_ping": True, **options})


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """One engine and its session factory, and a second engine for the hot lookups."""

    def __init__(self, url: str, max_connections: int = MAX_CONNECTIONS) -> None:
        self.url = url
        self.engine = make_engine(url, max_connections)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Autocommit and no ping: a lookup costs one round trip instead of four (ping,
        # BEGIN, the query, ROLLBACK): 207 against 554 us on PostgreSQL here. Their
        # callers run in the event loop, one at a time per process, so few are kept.
        self._reads = make_engine(
            url, READ_CONNECTIONS, isolation_level="AUTOCOMMIT", pool_pre_ping=False
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def read(self, query: Callable[[Connection], T]) -> T:
        """``query(connection)``, a read-only lookup (no ORM session), on the hot path.

        Without a ping, a connection the server closed (a restart) is found by using it;
        SQLAlchemy then drops the pool's older connections too, and a read can safely be
        run again, on a new one.
        """
        try:
            with self._reads.connect() as connection:
                return query(connection)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
        with self._reads.connect() as connection:
            return query(connection)

    def dispose(self) -> None:
        self.engine.dispose()
        self._reads.dispose()


def flush_or_conflict(session: Session, conflict: str) -> None:
    """Flush, turning a unique-constraint race (two requests at once) into a Conflict."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(conflict) from None
