"""Database errors described for logs and dead letters quote no value, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.error_text import describe
from shared.eventstore.engine import create_store_engine, database_engine
from tests.postgres_roles import owner_url

PII = "张伟13812345678"


@pytest.fixture
def engine(database_url):
    owner = database_engine(owner_url(database_url))  # on PostgreSQL the service role may not create tables
    with owner.begin() as connection:
        connection.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(8), phone TEXT NOT NULL)"))
    owner.dispose()
    engine = create_store_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO people VALUES (1, 'x', :phone)"), {"phone": PII})
    yield engine
    engine.dispose()


@pytest.mark.parametrize("statement, values", [
    ("INSERT INTO people VALUES (1, 'y', :phone)", {"phone": PII}),         # key taken: PostgreSQL quotes the key
    ("INSERT INTO people VALUES (2, :name, NULL)", {"name": PII[:8]}),      # NOT NULL: PostgreSQL quotes the row
    ("INSERT INTO people VALUES (3, :name, 'p')", {"name": PII}),           # too long for VARCHAR(8) on PostgreSQL
    ("INSERT INTO people VALUES (:id, 'z', 'p')", {"id": PII}),            # not an integer: PostgreSQL quotes it
])
def test_no_bound_value_or_quoted_row_reaches_the_description(engine, statement, values):
    with pytest.raises(DBAPIError) as failed, engine.begin() as connection:
        connection.execute(text(statement), values)
        if engine.dialect.name == "sqlite":  # SQLite takes some of these; make it fail like the others
            connection.execute(text("INSERT INTO people VALUES (1, 'dup', 'p')"))
    described = describe(failed.value)
    assert PII not in described and PII[:8] not in described and "13812345678" not in described
    assert described.startswith(type(failed.value).__name__ + ": ")
    assert "tests/integration/test_error_text.py" in described
