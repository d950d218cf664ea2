"""The care message ledger indexed by campaign, occurrence and customer: a run's anti-join probes it.

Revision ID: g0002
Revises: g0001
"""
from alembic import op

revision = "g0002"
down_revision = "g0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_care_messages_occasion", "care_messages", ["campaign_id", "occurrence", "customer_id"])
