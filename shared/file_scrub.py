"""Make what was deleted from tables leave the database files too.

Deleting a row or setting a column to NULL leaves the old bytes behind:

* **SQLite** zeroes deleted content in its pages (``secure_delete``, set on
  every connection), but the write-ahead log still holds earlier images of
  those pages. A ``wal_checkpoint(TRUNCATE)`` copies the newest pages into
  the database file and empties the log. It needs every reader to be on
  the newest snapshot; it waits a moment for that and otherwise reports
  not done, to be tried again.
* **PostgreSQL** keeps old row versions in the table and their entries in
  the indexes until a vacuum, and a plain ``VACUUM`` leaves their bytes in
  the pages' free space (and, when only a few rows died, skips the indexes
  altogether). ``VACUUM FULL`` writes the table and its indexes anew from
  the live rows only. It holds an exclusive lock while it runs, so it waits
  at most a moment for that lock and otherwise reports not done, rather
  than queue every reader of the table behind a long transaction
  (docs/decisions.md, "Privacy"). ``VACUUM`` cannot run inside a transaction.
"""

from __future__ import annotations

import logging
from typing import Iterable

from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from shared.eventstore.engine import own_connection, pooled_cursor, translated_errors

log = logging.getLogger(__name__)

CHECKPOINT_WAIT_MS = 200  # how long a checkpoint waits for readers to move on before it gives up for now
LOCK_WAIT_MS = 1000  # how long VACUUM FULL waits for its lock before it gives up for now
LOCK_NOT_AVAILABLE = "55P03"


def scrub(engine: Engine, tables: Iterable[Table]) -> bool:
    """Scrub the files behind ``tables``; False if readers or locks were in the way: try again later."""
    if engine.dialect.name == "sqlite":
        return _checkpoint_sqlite(engine)
    return _rewrite_postgres(engine, tables)


def _checkpoint_sqlite(engine: Engine) -> bool:
    with pooled_cursor(engine) as cursor:
        usual_wait = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            busy, _frames, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout={usual_wait}")
    return busy == 0


def _rewrite_postgres(engine: Engine, tables: Iterable[Table]) -> bool:
    """``VACUUM FULL`` each table on a connection of its own, closed after (it holds the session's lock timeout).

    Through the driver directly, so PostgreSQL's warnings stay readable: a
    table this database role does not own is skipped with one, and named in the log.
    """
    quote = engine.dialect.identifier_preparer.format_table
    connection = own_connection(engine)
    driver = connection.dbapi_connection
    try:
        driver.autocommit = True  # VACUUM refuses to run inside a transaction
        with translated_errors(engine, connection), driver.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
            for table in tables:
                cursor.execute(f"VACUUM (FULL) {quote(table)}")
    except OperationalError as error:
        if getattr(error.orig, "pgcode", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    finally:
        connection.close()
    for skipped in (notice.strip() for notice in driver.notices if "skipping" in notice):
        log.error("the erasure scrub could not rewrite a table (%s): give this service's database role "
                  "ownership of it, or the erased data stays in its pages", skipped)
    return True
