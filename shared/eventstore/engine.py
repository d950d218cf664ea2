"""Engines for SQLite (WAL) and PostgreSQL, chosen by URL.

Writers on SQLite open ``BEGIN IMMEDIATE`` so the write lock is taken before
the log head is read; readers keep deferred transactions. Under eventlet the
psycopg2 driver is made cooperative with psycogreen, otherwise one query
would stall every worker of the process.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from shared.migrations import upgrade

STORE_MIGRATIONS = Path(__file__).parent / "migrations"
IMMEDIATE = "crm_immediate"


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with the store's schema migrated to head."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    elif url.startswith("postgresql"):
        engine = _postgres_engine(url)
    else:
        raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
    upgrade(engine, STORE_MIGRATIONS, "alembic_version_store")
    return engine


def write_transaction(engine: Engine) -> Connection:
    """A connection whose next ``begin()`` takes the write lock at once."""
    return engine.connect().execution_options(**{IMMEDIATE: True})


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
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
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _make_psycopg2_cooperative() -> None:
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet is a hard dependency
        return
    if patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()
