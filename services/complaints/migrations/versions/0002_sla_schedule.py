"""When each open complaint next needs the SLA sweep (a cache the timer keeps).

Revision ID: p0002
Revises: p0001
"""
import sqlalchemy as sa
from alembic import op

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_schedule",
        sa.Column("complaint_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("rules", sa.String(64), nullable=False),
        sa.Column("next_check_at", sa.String(32), index=True),
    )
