"""Who may do what in a service's PostgreSQL database.

A role that owns a table may disable its triggers, so the role a service
connects as must not own the log: another role (the owner) runs the
migrations, and grants the service role only what serving needs
(docs/decisions.md, "Who may change the log"). The service role does own
its working tables, which no trigger guards: only an owner may vacuum a
table, and after an erasure the service rewrites the ones that held the
customer's data (``shared.file_scrub``). SQLite has no roles: whoever
opens the file may do anything, and a service migrates its own.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

# The log: the service appends to it and reads it, and nothing else. The
# audit service's ledger, its index of the customers batch entries list, and
# the Merkle tree nodes over it are logs too.
APPEND_ONLY_TABLES = ("events", "command_results", "audit_ledger", "audit_ledger_customers", "audit_tree")
APPEND_ONLY = "SELECT, INSERT"
# Alembic's version tables: the service checks how far its schema is.
VERSION_TABLE_PREFIX = "alembic_version"
READ_ONLY = "SELECT"
# Everything else is the service's own working state: projections,
# tracking, checkpoints, leases, dead letters, data keys.
READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"


def may_migrate(connection: Connection) -> bool:
    """Whether the connected role may change the schema: SQLite always; PostgreSQL as owner or superuser."""
    if connection.dialect.name != "postgresql":
        return True
    return bool(connection.exec_driver_sql(
        "SELECT r.rolsuper OR d.datdba = r.oid FROM pg_roles r, pg_database d "
        "WHERE r.rolname = current_user AND d.datname = current_database()").scalar())


def may_hand_over(connection: Connection, role: str) -> bool:
    """Whether the connected role may make ``role`` own a table: it is a member of ``role``, or a superuser.

    Without that the working tables stay the owner's, and the service's
    scrub after an erasure logs each table it may not rewrite.
    """
    return bool(connection.exec_driver_sql("SELECT pg_has_role(current_user, %(role)s, 'MEMBER')",
                                           {"role": role}).scalar())


def connected_as(connection: Connection) -> tuple[str, str]:
    """The PostgreSQL role and database of ``connection``."""
    role, database = connection.exec_driver_sql("SELECT current_user, current_database()").one()
    return role, database


def privileges_for(table: str) -> str:
    """What the service role may do to ``table``."""
    if table in APPEND_ONLY_TABLES:
        return APPEND_ONLY
    if table.startswith(VERSION_TABLE_PREFIX):
        return READ_ONLY
    return READ_WRITE


def grant_service_role(connection: Connection, role: str) -> None:
    """Give ``role`` exactly its rights on every table of the schema, and on tables made later.

    Run by the owner after each migration. The working tables are handed
    to ``role`` where the owner may do that (``may_hand_over``); the owner
    keeps migrating them as a member of ``role``. The grants of every other
    table are set afresh (revoke, then grant), so a right given by hand or
    by an older release does not outlive it. Tables the owner creates later (a
    projection of a new release, a test's table) start read-write through
    default privileges until the next run narrows them.
    """
    preparer = connection.dialect.identifier_preparer
    grantee = preparer.quote(role)
    schema = preparer.quote(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
    connection.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {READ_WRITE} ON TABLES TO {grantee}")
    connection.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {grantee}")
    owners = dict(connection.exec_driver_sql(
        "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename").all())
    tables = list(owners)
    owned = [table for table in tables if privileges_for(table) == READ_WRITE] \
        if may_hand_over(connection, role) else []
    # Only tables not handed over yet: ALTER ... OWNER locks a table against its running service's writes.
    handed_over = [table for table in owned if owners[table] != role]
    if handed_over:  # a new owner must be allowed to create in the schema: for the hand-over only, never to keep
        connection.exec_driver_sql(f"GRANT CREATE ON SCHEMA {schema} TO {grantee}")
        for table in handed_over:
            connection.exec_driver_sql(f"ALTER TABLE {schema}.{preparer.quote(table)} OWNER TO {grantee}")
        connection.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {schema} FROM {grantee}")
    for table in tables:
        if table in owned:
            continue  # the role's own: an owner holds every right on it
        qualified = f"{schema}.{preparer.quote(table)}"
        connection.exec_driver_sql(f"REVOKE ALL ON {qualified} FROM {grantee}")
        connection.exec_driver_sql(f"GRANT {privileges_for(table)} ON {qualified} TO {grantee}")
    connection.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {grantee}")
