"""The two PostgreSQL roles of a test session, split as in production.

The owner role owns every database the session creates and migrates it;
the service role is what the tests' stores and services connect as, with
the rights ``crm migrate`` grants it (docs/decisions.md, "Who may change
the log"). Roles are cluster-wide and other sessions use the same server
at the same time, so the names are this session's own; the session makes
them on first use and drops them at its end.
"""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

_SESSION = uuid.uuid4().hex[:12]
OWNER_ROLE = f"crm_test_{_SESSION}_owner"
SERVICE_ROLE = f"crm_test_{_SESSION}_service"
_PASSWORD = secrets.token_hex(16)


def as_role(url: str, role: str, database: str | None = None) -> str:
    """``url`` connecting as ``role`` (with the session's password), to ``database`` if given."""
    parts = urlsplit(url)
    netloc = f"{role}:{_PASSWORD}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    path = f"/{quote(database)}" if database is not None else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


def owner_url(url: str) -> str:
    """The database of a service-role ``url`` as its owner; any other URL (SQLite) as it is."""
    return as_role(url, OWNER_ROLE) if urlsplit(url).username == SERVICE_ROLE else url


def create_roles(cursor) -> None:
    """Make the session's two login roles (``cursor`` of a role that may create roles).

    The owner is a member of the service role, as in ``deploy/postgres-init.sql``,
    so it may hand the service its working tables and still migrate them.
    """
    for role in (OWNER_ROLE, SERVICE_ROLE):
        cursor.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (_PASSWORD,))
    cursor.execute(f'GRANT "{SERVICE_ROLE}" TO "{OWNER_ROLE}"')


def drop_roles(cursor) -> None:
    """Drop the session's roles; their databases must be gone already."""
    for role in (SERVICE_ROLE, OWNER_ROLE):
        cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
