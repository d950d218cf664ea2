"""Tables every service database holds beside its own projections.

The migrations in ``migrations/`` create them; this module is the one place
code refers to them.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, Text,
                        UniqueConstraint)

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (the fast path).
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events", metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("service", String(32), nullable=False),
    Column("stream_id", String(120), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("occurred_at", String(32), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("causation_id", String(64)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", String(88)),  # base64 Ed25519 over ``hash``; NULL on events logged before signing
    UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
)

command_results = Table(
    "command_results", metadata,
    Column("command_id", String(100), primary_key=True),
    Column("result", Text, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("fingerprint", String(64)),  # of the method and payload the id first ran with
)

# Positions of this log that left the database: the relay's row is the last
# event the broker confirmed, so the log's head may never be below it.
RELAY_CHECKPOINT = "relay"

checkpoints = Table(
    "checkpoints", metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

projection_tracking = Table(
    "projection_tracking", metadata,
    Column("projection", String(100), primary_key=True),
    Column("upstream", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("hash", String(64)),  # of the event at ``position``; the next one's prev_hash must match
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer", String(100), nullable=False),
    Column("upstream", String(32), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(100), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", String(32), nullable=False),
    Column("retried_at", String(32)),
)

leases = Table(
    "leases", metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

data_keys = Table(
    "data_keys", metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("wrapped_key", LargeBinary),
    Column("created_at", String(32), nullable=False),
    Column("destroyed_at", String(32)),
)
