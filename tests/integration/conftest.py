"""Databases for integration tests: a fresh one per test, on SQLite and PostgreSQL.

``sqlite_url`` and ``postgres_url`` give one new database each;
``database_url`` runs a test once per backend; ``postgres_url_factory``
makes as many PostgreSQL databases as a test needs (e.g. one per replica),
optionally with ``CREATE DATABASE`` options.

A PostgreSQL database is split as in production (tests/postgres_roles.py):
the session's owner role owns it and has migrated the store's schema, and
the URL a test gets connects as the session's service role, which may only
append to the log. ``owner_url(url)`` reaches the same database as the
owner, for a test's own tables or for tampering. Databases are named
``crm_test_<hex>`` and dropped after the test even if connections are still
open. Without a reachable server (``CRM_TEST_POSTGRES_URL``, default the
local ``postgres`` superuser; it must be allowed to create roles and
databases) the PostgreSQL cases fail: they are part of the suite.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Callable, Iterator

import pytest

from shared.eventstore.engine import STORE_HISTORY
from shared.service_migration import migrate_database
from tests.postgres_roles import OWNER_ROLE, SERVICE_ROLE, as_role, owner_url
from tests.support import POSTGRES_ADMIN_URL, admin_cursor


@contextlib.contextmanager
def fresh_postgres_database(options: str = "", migrated: bool = True) -> Iterator[str]:
    """The service-role URL of a new database the owner made (and migrated the store of); dropped on exit."""
    name = f"crm_test_{uuid.uuid4().hex}"
    with admin_cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER_ROLE}" {options}')
    try:
        url = as_role(POSTGRES_ADMIN_URL, SERVICE_ROLE, name)
        if migrated:
            migrate_database(owner_url(url), url, [STORE_HISTORY])
        yield url
    finally:
        with admin_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url_factory(postgres_roles) -> Iterator[Callable[..., str]]:
    """``make(options="", migrated=True)`` → the service-role URL of a new PostgreSQL database.

    All are dropped after the test. ``migrated=False`` leaves the schema
    empty, as a database is before ``crm migrate``.
    """
    with contextlib.ExitStack() as databases:
        yield lambda options="", migrated=True: databases.enter_context(fresh_postgres_database(options, migrated))


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
