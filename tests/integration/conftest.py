"""Databases for integration tests: a fresh one per test, on SQLite and PostgreSQL.

``sqlite_url`` and ``postgres_url`` give one empty database each;
``database_url`` runs a test once per backend; ``postgres_url_factory``
makes as many PostgreSQL databases as a test needs (e.g. one per replica),
optionally with ``CREATE DATABASE`` options. PostgreSQL databases are named
``crm_test_<hex>`` and dropped after the test even if connections are still
open. Without a reachable server (``CRM_TEST_POSTGRES_URL``, default the
local ``postgres`` superuser) the PostgreSQL cases fail: they are part of the suite.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from tests.support import postgres_unreachable

POSTGRES_ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_postgres_database(options: str = "") -> Iterator[str]:
    """The URL of a new database (``CREATE DATABASE <name> <options>``), dropped on exit."""
    try:
        admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.fail(postgres_unreachable(POSTGRES_ADMIN_URL, error), pytrace=False)
    admin.autocommit = True
    name = f"crm_test_{uuid.uuid4().hex}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}" {options}')
        try:
            yield urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture
def postgres_url_factory() -> Iterator[Callable[..., str]]:
    """``make(options="")`` → the URL of a new PostgreSQL database; all are dropped after the test."""
    with contextlib.ExitStack() as databases:
        yield lambda options="": databases.enter_context(fresh_postgres_database(options))


@pytest.fixture
def postgres_url(postgres_url_factory) -> str:
    return postgres_url_factory()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'crm.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """Each test using it runs twice: on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
