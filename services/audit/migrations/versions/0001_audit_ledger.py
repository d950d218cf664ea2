"""The audit ledger and the Merkle tree nodes over it, both append-only.

The database refuses UPDATE and DELETE of either table (and TRUNCATE on
PostgreSQL, REPLACE on SQLite), as it does for the event log; on
PostgreSQL the service role may only INSERT and SELECT them
(``shared.database_roles``).

Revision ID: a0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None

POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sqlite_refusal(name: str, timing: str, table: str, when: str = "") -> str:
    return (f"CREATE TRIGGER {name} {timing} ON {table} {when} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


SQLITE_GUARDS = [
    _sqlite_refusal("audit_ledger_refuse_update", "BEFORE UPDATE", "audit_ledger"),
    _sqlite_refusal("audit_ledger_refuse_delete", "BEFORE DELETE", "audit_ledger"),
    _sqlite_refusal("audit_ledger_refuse_replace", "BEFORE INSERT", "audit_ledger",
                    "WHEN EXISTS (SELECT 1 FROM audit_ledger WHERE position = NEW.position) "
                    "OR EXISTS (SELECT 1 FROM audit_ledger WHERE source_service = NEW.source_service "
                    "AND source_position = NEW.source_position)"),
    _sqlite_refusal("audit_tree_refuse_update", "BEFORE UPDATE", "audit_tree"),
    _sqlite_refusal("audit_tree_refuse_delete", "BEFORE DELETE", "audit_tree"),
    _sqlite_refusal("audit_tree_refuse_replace", "BEFORE INSERT", "audit_tree",
                    "WHEN EXISTS (SELECT 1 FROM audit_tree WHERE level = NEW.level AND idx = NEW.idx)"),
]
POSTGRES_GUARDS = [
    """CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$""",
    *(statement for table in ("audit_ledger", "audit_tree") for statement in (
        f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
        f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    )),
]


def upgrade() -> None:
    op.create_table(
        "audit_ledger",
        sa.Column("position", POSITION, primary_key=True, autoincrement=False),
        sa.Column("source_service", sa.String(32), nullable=False),
        sa.Column("source_position", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("stream_id", sa.String(120), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("source_prev_hash", sa.String(64), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),  # the source event's hashed canonical JSON
        sa.Column("ingested_at", sa.String(32), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("source_service", "source_position", name="uq_audit_ledger_source"),
    )
    op.create_index("ix_audit_ledger_customer", "audit_ledger", ["customer_id", "position"])
    op.create_index("ix_audit_ledger_stream", "audit_ledger", ["source_service", "stream_id", "position"])
    op.create_index("ix_audit_ledger_type", "audit_ledger", ["type", "position"])
    op.create_table(
        "audit_tree",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    guards = POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)
