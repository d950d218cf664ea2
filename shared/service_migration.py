"""A service's database brought to head by the role that owns it (``crm migrate``, ``crm up``).

On PostgreSQL the service connects as a role that may only append to the
log and work in its own tables, so it cannot migrate its schema; the
owner does, here, and then grants that role its rights
(``shared.database_roles``). On SQLite, or where a service connects as the
owner, the same steps run with nothing to grant.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy.engine import Connection, make_url

from shared.config import Settings
from shared.database_roles import connected_as, grant_service_role, may_migrate
from shared.event_log import EventLog
from shared.eventstore.engine import STORE_HISTORY, database_engine
from shared.migrations import History, SchemaNotMigrated, upgrade


@dataclass(frozen=True)
class Migrated:
    """Where a database's histories are now, and which role got its rights (``None``: no other role)."""

    revisions: dict[str, str | None]  # by version table
    granted_to: str | None


def histories_of(service_class: type) -> list[History]:
    """The store's history, then the service's own as its ``EventLog`` declares it."""
    own = [provider.history(service_class.name)
           for _name, provider in inspect.getmembers(service_class, lambda member: isinstance(member, EventLog))]
    return [STORE_HISTORY, *(history for history in own if history is not None)]


def migrate_service(settings: Settings, service: str, service_class: type) -> Migrated:
    """Migrate ``service``'s database as its owner (its owner URL, else its own URL) and grant its role."""
    service_url = settings.database_url(service)
    return migrate_database(settings.owner_database_url(service) or service_url, service_url,
                            histories_of(service_class))


def migrate_database(owner_url: str, service_url: str, histories: Sequence[History]) -> Migrated:
    """Bring ``histories`` to head connected as ``owner_url``, then grant the role of ``service_url``.

    Raises ``SchemaNotMigrated`` when the role of ``owner_url`` does not own
    the database (nor is a superuser), before changing anything.
    """
    engine = database_engine(owner_url)
    try:
        with engine.connect() as connection:
            if not may_migrate(connection):
                role, database = connected_as(connection)
                raise SchemaNotMigrated(f"role {role} may not migrate database {database}: it neither owns "
                                        f"the database nor is a superuser")
            grantee = _other_role(connection, service_url)
        for history in histories:
            upgrade(engine, history.location, history.version_table)
        if grantee is not None:
            with engine.begin() as connection:
                grant_service_role(connection, grantee)
        with engine.connect() as connection:
            revisions = {history.version_table: history.current(connection) for history in histories}
    finally:
        engine.dispose()
    return Migrated(revisions, grantee)


def _other_role(connection: Connection, service_url: str) -> str | None:
    """The role ``service_url`` connects as, if PostgreSQL and another than the connected one."""
    if connection.dialect.name != "postgresql":
        return None
    role = make_url(service_url).username
    return role if role and role != connected_as(connection)[0] else None
