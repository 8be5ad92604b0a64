"""Engines, sessions and migrations for SQLite (the default, a file in the data dir) and PostgreSQL.

SQLite: every session opens the file anew (``NullPool``) read-write without creating it, so a
database file that goes away is noticed on the next request (503) and a restored one is used again;
write sessions start with ``BEGIN IMMEDIATE`` (no lock-upgrade deadlocks between processes), WAL
journal, 30 s busy timeout. PostgreSQL: a pooled engine that pings connections before use, so a
restarted server is picked up again without restarting the service.

Migrations are Alembic scripts shipped in ``migrations/``, applied at start by every command under a
lock (PostgreSQL advisory lock; a lock file next to the SQLite database).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, exc, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from modelshield.errors import UsageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_ID = 0x6D6F64656C  # "model"
_BUSY_TIMEOUT_S = 30.0

#: Errors that mean "the database does not answer" (as opposed to a bug or a constraint): 503, retry later.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached or used right now."""
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL (relative paths are relative to the current folder)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise UsageError(
            "the catalog needs a SQLite file, not an in-memory database",
            hint="give sqlite:///PATH/catalog.db or leave --database-url out",
        )
    return Path(database).absolute()


def _sqlite_engine(path: Path, *, create: bool) -> Engine:
    mode = "rwc" if create else "rw"
    uri = f"file:{quote(str(path))}?mode={mode}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, *, create: bool = False, pool_size: int = 5) -> Engine:
    """An engine for ``url``; ``create`` lets SQLite create the file (migrations only)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(sqlite_path(url), create=create)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_timeout=10,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )


class Database:
    """One database: its engine and short read or write sessions."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._writes = sessionmaker(writer, expire_on_commit=False)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (rolled back at the end)."""
        with self._reads() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session that commits at the end (rolls back if the block raises)."""
        with self._writes() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise when the database does not answer (and its schema is not there)."""
        with self.read() as session:
            session.execute(text("SELECT 1 FROM settings WHERE 1 = 0"))

    def dispose(self) -> None:
        """Close pooled connections (after a fork, or at exit)."""
        self.engine.dispose()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (idempotent; safe when several processes start at once)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create {path.parent}: {error.strerror}", hint="check --database-url") from None
        with _file_lock(path.with_name(path.name + ".migrate-lock")):
            engine = _sqlite_engine(path, create=True)
            try:
                raw = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
                try:
                    raw.execute("PRAGMA journal_mode=WAL")
                finally:
                    raw.close()
                with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            finally:
                engine.dispose()
        return
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
