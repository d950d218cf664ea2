"""Customer directory projection.

Revision ID: c0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_directory",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("name_key", sa.String(100), index=True),
        sa.Column("phone", sa.String(16), index=True),
        sa.Column("email", sa.String(254), index=True),
        sa.Column("birthday", sa.String(10)),
        sa.Column("birthday_calendar", sa.String(10), nullable=False),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False, index=True),
        sa.Column("consents", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("registered_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("tag", sa.String(40), primary_key=True, index=True),
    )
    op.create_table(
        "erasure_receipts",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("receipt_id", sa.String(36), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("erased_at", sa.String(32), nullable=False),
        sa.Column("erased_by", sa.String(100), nullable=False),
    )
