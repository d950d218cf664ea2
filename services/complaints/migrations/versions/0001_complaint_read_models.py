"""Complaint list and the complaints service's directory of customers.

Revision ID: p0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "complaint_list",
        sa.Column("complaint_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, index=True),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False, index=True),
        sa.Column("status", sa.String(24), nullable=False, index=True),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("assignee", sa.String(100), index=True),
        sa.Column("summary", sa.String(200)),
        sa.Column("related_complaint_id", sa.String(64)),
        sa.Column("filed_at", sa.String(32), nullable=False, index=True),
        sa.Column("first_replied_at", sa.String(32)),
        sa.Column("resolved_at", sa.String(32)),
        sa.Column("first_resolved_at", sa.String(32)),
        sa.Column("closed_at", sa.String(32)),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("breached", sa.Boolean, nullable=False, index=True),
        sa.Column("breach_count", sa.Integer, nullable=False),
        sa.Column("satisfied", sa.Boolean),
        sa.Column("score", sa.Integer),
        sa.Column("pii_erased", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "complaint_customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.String(32)),
        sa.Column("erased_at", sa.String(32)),
    )
