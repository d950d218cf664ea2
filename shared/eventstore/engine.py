"""Engines for SQLite (WAL) and PostgreSQL, chosen by URL.

Writers on SQLite open ``BEGIN IMMEDIATE`` so the write lock is taken before
the log head is read; readers keep deferred transactions. Under eventlet the
psycopg2 driver is made cooperative with psycogreen, otherwise one query
would stall every worker of the process.

Personal data passes through these engines, so SQLAlchemy never puts bound
parameters into its error messages or logs (``hide_parameters``), and
SQLite overwrites deleted content with zeros (``secure_delete``) instead
of leaving it in free pages.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from shared.migrations import History, migrate_or_check

STORE_HISTORY = History(Path(__file__).parent / "migrations", "alembic_version_store")
IMMEDIATE = "crm_immediate"


def create_store_engine(url: str, service: str | None = None) -> Engine:
    """An engine for ``url`` with the store's schema at head.

    A role that may migrate brings it there; one that may not (a service's
    restricted PostgreSQL role) gets ``SchemaNotMigrated`` naming the
    ``crm migrate`` command for ``service`` unless the owner already has.
    """
    engine = database_engine(url)
    try:
        migrate_or_check(engine, STORE_HISTORY, service)
    except BaseException:
        engine.dispose()
        raise
    return engine


def database_engine(url: str) -> Engine:
    """An engine for ``url`` configured as the store needs it, the schema left as it is."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql"):
        return _postgres_engine(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def write_transaction(engine: Engine) -> Connection:
    """A connection whose next ``begin()`` takes the write lock at once."""
    return engine.connect().execution_options(**{IMMEDIATE: True})


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           pool_size=8, max_overflow=8, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    _make_psycopg2_cooperative()
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


def _make_psycopg2_cooperative() -> None:
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet is a hard dependency
        return
    if patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()


# -- raw DBAPI access for the store's hot paths ------------------------------
#
# SQLAlchemy Core costs tens of microseconds per statement (checkout, compile
# cache lookup, Row objects); on a 100-microsecond append or a 5-microsecond
# row that is most of the time. The store therefore talks to the DBAPI
# directly on its hot paths, and these helpers keep two things SQLAlchemy
# would otherwise give: errors arrive as SQLAlchemy exceptions, and broken
# connections are thrown away instead of being reused.


def translated(engine: Engine, error: Exception, connection: Any = None) -> Exception:
    """The SQLAlchemy exception for a DBAPI ``error``; invalidates ``connection`` if it broke."""
    broken = connection is not None and engine.dialect.is_disconnect(error, connection.dbapi_connection, None)
    if broken:
        connection.invalidate(error)
    return DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error,
                               connection_invalidated=broken, dialect=engine.dialect)


@contextmanager
def translated_errors(engine: Engine, connection: Any = None) -> Iterator[None]:
    """Raise DBAPI errors of the block as SQLAlchemy's (see ``translated``)."""
    try:
        yield
    except engine.dialect.loaded_dbapi.Error as error:
        raise translated(engine, error, connection) from error


@contextmanager
def pooled_cursor(engine: Engine) -> Iterator[Any]:
    """A DBAPI cursor on a pooled connection, for one short read.

    On SQLite the connection is in autocommit (``isolation_level=None``), so
    a single SELECT is its own consistent snapshot; on PostgreSQL the pool's
    reset on return ends the implicit transaction.
    """
    connection = engine.raw_connection()
    try:
        with translated_errors(engine, connection):
            cursor = connection.dbapi_connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
    finally:
        connection.close()


def own_connection(engine: Engine) -> PoolProxiedConnection:
    """A connection taken out of the pool for good (a writer holds one).

    Detached, it does not count against the pool's size, and closing it
    closes the DBAPI connection instead of returning it to a pool that
    ``Engine.dispose()`` may have replaced meanwhile.
    """
    connection = engine.raw_connection()
    connection.detach()
    return connection


def paramstyle(engine: Engine, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own style."""
    return sql if engine.dialect.paramstyle == "qmark" else sql.replace("?", "%s")
