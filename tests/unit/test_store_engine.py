"""What the store's engines promise about personal data: no parameters in errors, deleted bytes zeroed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared.eventstore.engine import create_store_engine


@pytest.fixture
def engine(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def test_sqlite_connections_overwrite_deleted_content(engine):
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1


def test_a_failing_statement_names_no_bound_value(engine):
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE people (name TEXT PRIMARY KEY)"))
        connection.execute(text("INSERT INTO people VALUES (:name)"), {"name": "张伟 13812345678"})
    with pytest.raises(IntegrityError) as failed, engine.begin() as connection:
        connection.execute(text("INSERT INTO people VALUES (:name)"), {"name": "张伟 13812345678"})
    assert "13812345678" not in str(failed.value) and "hidden" in str(failed.value)
