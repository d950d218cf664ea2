"""The callback list, the attempts, the complaints seen and the callbacks service's directory of customers.

Revision ID: b0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "b0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callback_list",
        sa.Column("callback_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("due_at", sa.String(32), nullable=False, index=True),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("priority_rank", sa.Integer, nullable=False),
        sa.Column("assignee", sa.String(100), index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("complaint_id", sa.String(64)),
        sa.Column("scheduled_at", sa.String(32), nullable=False),
        sa.Column("closed_at", sa.String(32)),
        sa.Column("close_reason", sa.String(32)),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "callback_attempts",
        sa.Column("callback_id", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("attempted_at", sa.String(32), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("satisfaction", sa.Integer),
        sa.Column("script_followed", sa.Boolean),
    )
    op.create_table(
        "callback_complaints",
        sa.Column("complaint_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("callback_id", sa.String(64), index=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("filed_at", sa.String(32), nullable=False),
        sa.Column("resolved_at", sa.String(32)),
        sa.Column("closed_at", sa.String(32)),
    )
    op.create_table(
        "callback_customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False, index=True),
        sa.Column("callbacks_consent", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("callback_customers", "callback_complaints", "callback_attempts", "callback_list"):
        op.drop_table(table)
