"""The PostgreSQL scrub as the service role: what it owns, a lock it cannot get, a table it may not rewrite."""

from __future__ import annotations

import logging
import time

import psycopg2
import pytest
from sqlalchemy import MetaData, Table

from shared.eventstore.engine import create_store_engine
from shared.eventstore.tables import dead_letters
from shared.file_scrub import LOCK_WAIT_MS, scrub
from tests.postgres_roles import SERVICE_ROLE, owner_url


@pytest.fixture
def engine(postgres_url):
    engine = create_store_engine(postgres_url)
    yield engine
    engine.dispose()


def owners(url: str) -> dict[str, str]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
        return dict(cursor.fetchall())


def test_the_service_role_owns_its_working_tables_and_not_the_log(engine, postgres_url):
    owned = owners(postgres_url)
    assert owned["data_keys"] == owned["dead_letters"] == owned["projection_tracking"] == SERVICE_ROLE
    assert SERVICE_ROLE not in (owned["events"], owned["command_results"], owned["alembic_version_store"])


def test_a_scrub_that_cannot_get_its_lock_gives_up_at_once_and_succeeds_later(engine, postgres_url):
    holder = psycopg2.connect(postgres_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE dead_letters IN ACCESS SHARE MODE")  # a long reader, in its transaction
        began = time.monotonic()
        assert scrub(engine, [dead_letters]) is False
        assert time.monotonic() - began < 3 * LOCK_WAIT_MS / 1000
    finally:
        holder.close()
    assert scrub(engine, [dead_letters]) is True


def test_a_table_the_service_role_does_not_own_is_named_in_the_log(engine, postgres_url, caplog):
    with psycopg2.connect(owner_url(postgres_url)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")  # the owner's, until migrated
    people = Table("people", MetaData())
    with caplog.at_level(logging.ERROR, logger="shared.file_scrub"):
        assert scrub(engine, [people]) is True
    assert any('"people"' in record.getMessage() and "ownership" in record.getMessage()
               for record in caplog.records)
