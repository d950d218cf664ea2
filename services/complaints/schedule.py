"""Which complaints the SLA sweep must load: a note per complaint of when it next needs a look.

When the sweep finds nothing to record for a complaint it writes
``domain.next_sla_check`` into ``sla_schedule``, for that complaint version
and a fingerprint of the SLA rules. Later sweeps load only complaints whose
moment has come, that changed since (the list projection shows another
version), that were never looked at, or whose note was made under other
rules; a quiet tick over thousands of open complaints is one query. The
table is a cache, not a projection: emptied, it costs one full sweep.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, MetaData, String, Table, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from services.complaints import domain
from services.complaints.projection import complaint_list
from shared.eventstore.engine import write_transaction

NOTE_BATCH = 500

metadata = MetaData()
sla_schedule = Table(
    "sla_schedule", metadata,
    Column("complaint_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("rules", String(64), nullable=False),
    Column("next_check_at", String(32), index=True),  # None: nothing happens until the complaint changes
)


def due_complaint_ids(engine: Engine, rules: domain.Rules, now: datetime) -> list[str]:
    """Open complaints the sweep must load at ``now``, oldest first."""
    listed, noted = complaint_list.c, sla_schedule.c
    query = (select(listed.complaint_id)
             .select_from(complaint_list.outerjoin(sla_schedule, noted.complaint_id == listed.complaint_id))
             .where(listed.status != "closed",
                    or_(noted.complaint_id.is_(None), noted.version != listed.version,
                        noted.rules != rules.fingerprint, noted.next_check_at <= domain.iso(now)))
             .order_by(listed.filed_at, listed.complaint_id))
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def note_next_checks(engine: Engine, rules: domain.Rules, now: datetime, states: list[domain.Complaint]) -> None:
    """Remember when each of ``states`` (nothing to record at ``now``) next needs the sweep."""
    upsert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(sla_schedule)
    upsert = upsert.on_conflict_do_update(index_elements=[sla_schedule.c.complaint_id], set_={
        name: upsert.excluded[name] for name in ("version", "rules", "next_check_at")})
    for start in range(0, len(states), NOTE_BATCH):
        rows = [{"complaint_id": state.complaint_id, "version": state.version, "rules": rules.fingerprint,
                 "next_check_at": domain.iso_or_none(domain.next_sla_check(state, now, rules))}
                for state in states[start:start + NOTE_BATCH]]
        with write_transaction(engine) as connection, connection.begin():
            connection.execute(upsert, rows)
