"""The PostgreSQL scrub gives way to a lock it cannot get, and says when it may not rewrite a table."""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine

from shared.eventstore.engine import create_store_engine
from shared.file_scrub import LOCK_WAIT_MS, scrub

people = Table("people", MetaData(), Column("id", Integer, primary_key=True), Column("name", Text))


@pytest.fixture
def engine(postgres_url):
    engine = create_store_engine(postgres_url)
    people.metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_a_scrub_that_cannot_get_its_lock_gives_up_at_once_and_succeeds_later(engine, postgres_url):
    holder = psycopg2.connect(postgres_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE people IN ACCESS SHARE MODE")  # a long reader, in its transaction
        began = time.monotonic()
        assert scrub(engine, [people]) is False
        assert time.monotonic() - began < 3 * LOCK_WAIT_MS / 1000
    finally:
        holder.close()
    assert scrub(engine, [people]) is True


def test_a_table_the_role_does_not_own_is_named_in_the_log(engine, postgres_url, caplog):
    role = f"crm_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{role}" LOGIN')
            cursor.execute(f'GRANT ALL ON people TO "{role}"')
        parts = urlsplit(postgres_url)
        not_owner = create_engine(urlunsplit(parts._replace(scheme="postgresql+psycopg2",
                                                            netloc=f"{role}@{parts.hostname}:{parts.port or 5432}")))
        try:
            with caplog.at_level(logging.ERROR, logger="shared.file_scrub"):
                assert scrub(not_owner, [people]) is True
        finally:
            not_owner.dispose()
        assert any('"people"' in record.getMessage() and "ownership" in record.getMessage()
                   for record in caplog.records)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')
        admin.close()
