"""``crm migrate``: bring services' databases to head as their owner, before the services start.

On PostgreSQL a service connects as a role that may only append to its log
and work in its own tables, so it cannot change its schema; it checks that
the schema is at head and refuses to start otherwise. This command is what
runs the migrations instead, connected with ``CRM_<SERVICE>_OWNER_DATABASE_URL``,
and grants the service's role its rights. ``crm up`` runs it for every
service with an owner URL; the compose file runs it as a one-shot container.
Without an owner URL it connects as the service itself: right for SQLite,
and for a PostgreSQL role that owns its database.
"""

from __future__ import annotations

from typing import Any, Iterable

import typer

from shared.cli.rpc import cli_settings, fail, print_table, redact
from shared.cli.service_choice import chosen_services
from shared.config import Settings, owner_url_key
from shared.discovery import ServiceSpec


def migrate(names: list[str] = typer.Argument(None, help="services to migrate (default: all registered)")) -> None:
    """Migrate each service's database as its owner, and grant the service's role its rights."""
    chosen = chosen_services(names or [], "NAMES")
    settings = cli_settings(generate_secrets=False)
    print_table([migrate_one(settings, spec) for spec in chosen.values()],
                ["service", "database", "revisions", ("granted_to", "service role")])


def migrate_owned(settings: Settings, services: Iterable[ServiceSpec]) -> None:
    """Migrate the services whose owner URL is set (``crm up``); the others migrate themselves."""
    for spec in services:
        if settings.owner_database_url(spec.name):
            migrate_one(settings, spec)


def migrate_one(settings: Settings, spec: ServiceSpec) -> dict[str, Any]:
    """Migrate one service; a failure ends the command naming the service and what to change."""
    from sqlalchemy.exc import SQLAlchemyError  # imported here: `crm` starts fast

    from shared.migrations import SchemaNotMigrated
    from shared.service_migration import migrate_service

    url = settings.owner_database_url(spec.name) or settings.database_url(spec.name)
    try:
        migrated = migrate_service(settings, spec.name, spec.load_class())
    except SchemaNotMigrated as error:
        fail(f"{spec.name}: {error}; set {owner_url_key(spec.name)} to the URL of the role that owns it")
    except SQLAlchemyError as error:
        fail(f"{spec.name}: migrating {redact(url)} failed: {' '.join(str(getattr(error, 'orig', None) or error).split())}")
    return {"service": spec.name, "database": redact(url), "revisions": migrated.revisions,
            "granted_to": migrated.granted_to}
