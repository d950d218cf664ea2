"""Checksums of read-model tables, equal for equal content on SQLite and PostgreSQL.

A rebuild compares the live projection with one replayed from the logs by
these checksums, so they must not depend on the backend, the insertion
order or the database's collation.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator, Mapping

from sqlalchemy import MetaData, String, Table, select
from sqlalchemy.engine import Connection

from shared.canonical import canonical_json


def checksum(connection: Connection, metadata: MetaData) -> str:
    """SHA-256 over every row of every table in ``metadata``, in key order.

    Text keys are ordered by code point (PostgreSQL's ``"C"`` collation,
    SQLite's default), not by the database's locale, and rows are canonical
    JSON.
    """
    tables = sorted(metadata.tables.values(), key=lambda table: table.name)
    return digest_tables((table.name, _rows_in_key_order(connection, table)) for table in tables)


def digest_tables(tables: Iterable[tuple[str, Iterable[Mapping[str, Any]]]]) -> str:
    """SHA-256 of ``(table name, rows)`` pairs, rows already in key order."""
    digest = hashlib.sha256()
    for name, rows in tables:
        digest.update(f"table {name}\n".encode())
        for row in rows:
            digest.update(canonical_json(dict(row)).encode() + b"\n")
    return digest.hexdigest()


def _rows_in_key_order(connection: Connection, table: Table) -> Iterator[Mapping[str, Any]]:
    key = list(table.primary_key.columns) or list(table.columns)
    if connection.dialect.name == "postgresql":
        key = [column.collate("C") if isinstance(column.type, String) else column for column in key]
    result = connection.execution_options(yield_per=1000).execute(select(table).order_by(*key))
    return iter(result.mappings())
