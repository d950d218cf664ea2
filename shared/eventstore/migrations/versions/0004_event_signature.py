"""Each event carries its producer's signature over its hash.

``signature`` is the base64 Ed25519 signature (64 bytes, 88 characters) of
the event's ``hash`` by the service that appended it; the hash does not
cover it. Events logged before this revision have none (NULL): consumers
and ``verify_log`` refuse an unsigned event, so a log from before signing
is read by nobody that checks.

SQLite adds the column in place (``ALTER TABLE ... ADD COLUMN``), so the
table is not rebuilt and its append-only triggers stay.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("signature", sa.String(88), nullable=True))
