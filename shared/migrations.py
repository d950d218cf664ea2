"""Run a package's Alembic migrations against a live engine, or check they ran.

Every service database holds two migration histories, the store's own and the
service's projections, each in its own version table, so each can evolve
without the other.

A role that may change the schema (any SQLite connection, the owner or a
superuser on PostgreSQL) brings it to head as the service starts. The
restricted role a service connects as in production may not: its schema is
migrated beforehand by the owner (``crm migrate``), and the service only
checks that it is at head, refusing to start otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from shared.config import owner_url_key
from shared.database_roles import connected_as, may_migrate


@dataclass(frozen=True)
class History:
    """One migration history: where its scripts are, and the table that records how far a database is."""

    location: Path
    version_table: str

    def head(self) -> str | None:
        return ScriptDirectory(str(self.location)).get_current_head()

    def current(self, connection: Connection) -> str | None:
        return MigrationContext.configure(connection, opts={"version_table": self.version_table}) \
            .get_current_revision()


class SchemaNotMigrated(RuntimeError):
    """The database is behind a migration history, and the connected role may not bring it up."""


def upgrade(engine: Engine, script_location: Path, version_table: str, revision: str = "head") -> None:
    """Bring the schema of ``script_location`` to ``revision`` (head), holding one connection."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["version_table"] = version_table
        command.upgrade(config, revision)


def migrate_or_check(engine: Engine, history: History, service: str | None = None) -> None:
    """Bring ``history`` to head if the connected role may; otherwise refuse to go on unless it is there.

    ``service`` names the ``crm migrate`` command in the refusal.
    """
    with engine.connect() as connection:
        if not may_migrate(connection):
            _refuse_unless_at_head(connection, history, service or "<service>")
            return
    upgrade(engine, history.location, history.version_table)


def _refuse_unless_at_head(connection: Connection, history: History, service: str) -> None:
    current, head = history.current(connection), history.head()
    if current == head:
        return
    role, database = connected_as(connection)
    raise SchemaNotMigrated(
        f"database {database} is at revision {current or 'none'} of {history.version_table}, not at head "
        f"{head}, and role {role} may not migrate it (it neither owns the database nor is a superuser): "
        f"run `crm migrate {service}` with {owner_url_key(service)} set to the owner's URL, "
        f"then start the service again")


def run_env() -> None:
    """Body of every ``env.py``: online migrations on the handed-in connection."""
    config = context.config
    context.configure(connection=config.attributes["connection"],
                      version_table=config.attributes["version_table"],
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
