"""A command id remembers what it was used for.

``fingerprint`` is the SHA-256 of the method and payload the command id
first ran with. A repeat with the same fingerprint gets the stored result;
the same id with another method or payload is refused, so a caller that
reuses an id by mistake learns of it instead of getting someone else's
result. Rows recorded before this revision have none and match nothing.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("command_results") as table:
        table.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
