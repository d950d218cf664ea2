"""Session fixtures shared by every test layer."""

from __future__ import annotations

import uuid

import pytest

from tests.postgres_roles import create_roles, drop_roles
from tests.support import admin_cursor, private_vhost


@pytest.fixture(scope="session")
def amqp_uri():
    """A RabbitMQ virtual host of this test session's own.

    Services are addressed by name (``rpc-customers``); a private vhost keeps
    this session's services from answering, or being answered by, any other
    services on the same broker. Without a broker or its management API the
    first test using it fails with the one-line fix, and the rest with the same.
    """
    with private_vhost(f"crm-test-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


@pytest.fixture(scope="session")
def postgres_roles():
    """The session's owner and service roles (tests/postgres_roles.py), made when a test first needs them.

    Every PostgreSQL database of the session belongs to them, so they are
    dropped at its end, after the databases.
    """
    with admin_cursor() as cursor:
        create_roles(cursor)
    yield
    with admin_cursor() as cursor:
        drop_roles(cursor)
