"""Which customers each ledger entry about several customers concerns, append-only like the ledger.

An event about several customers lists them in ``customer_ids``; the
ledger entry's own ``customer_id`` stays empty (the entry hash covers that
column, so its format does not change) and each listed customer gets a
row here, so a customer's history finds the entry. The database refuses
UPDATE and DELETE of it (and TRUNCATE on PostgreSQL, REPLACE on SQLite);
on PostgreSQL the service role may only INSERT and SELECT it
(``shared.database_roles``).

Revision ID: a0002
Revises: a0001
"""
import sqlalchemy as sa
from alembic import op

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None

TABLE = "audit_ledger_customers"
SQLITE_GUARDS = [
    f"CREATE TRIGGER {TABLE}_refuse_update BEFORE UPDATE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
    f"CREATE TRIGGER {TABLE}_refuse_delete BEFORE DELETE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
    f"CREATE TRIGGER {TABLE}_refuse_replace BEFORE INSERT ON {TABLE} "
    f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE customer_id = NEW.customer_id AND position = NEW.position) "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END",
]
POSTGRES_GUARDS = [  # audit_refuse_change() is a0001's
    f"CREATE TRIGGER {TABLE}_refuse_change BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    f"CREATE TRIGGER {TABLE}_refuse_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
]


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=False),
    )
    guards = POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)
