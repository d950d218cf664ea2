"""Projection tracking remembers the hash of the last event applied.

The next event of an upstream must name it as its ``prev_hash``; an event
that does not belongs to another log (the producer's database was replaced)
and is refused instead of being applied or skipped as a duplicate. Rows
tracked before this revision have no hash yet and take the next event's.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projection_tracking") as table:
        table.add_column(sa.Column("hash", sa.String(64), nullable=True))

