"""The ledger of care messages and the progress of runs: the service's working tables.

``care_messages`` has one row per message key (campaign × customer ×
occurrence), its primary key. A run *claims* the keys of a batch with an
insert that skips keys already present, before anything is sent, and only
sends the keys it claimed itself; so two runs of one campaign, at the same
moment or a year apart on the same occurrence, can never both send one
message. The row's status moves ``queued`` → ``sent`` or ``failed``; its
``day`` feeds the frequency cap across campaigns.

``campaign_runs`` keeps each run's counters for ``run_status`` (the run's
stream holds the same facts as events; reading 200,000 events to show a
progress bar would be too slow).

Neither table is a projection: they are the run's own bookkeeping, like
the lease table, and a projection rebuild leaves them alone.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import Column, Index, MetaData, String, Table, Text, func, select, update
from sqlalchemy.engine import Connection, Engine

from shared.eventstore.engine import paramstyle
from shared.sql_lists import among

metadata = MetaData()

care_messages = Table(
    "care_messages", metadata,
    Column("message_key", String(200), primary_key=True),
    Column("campaign_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("occurrence", String(40), nullable=False),
    Column("run_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # queued, sent, failed
    Column("day", String(10), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_care_messages_occasion", "campaign_id", "occurrence", "customer_id"),  # a run's anti-join
)

campaign_runs = Table(
    "campaign_runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("campaign_id", String(64), nullable=False, index=True),
    Column("on_date", String(10), nullable=False),
    Column("status", String(16), nullable=False),  # running, stopped, completed
    Column("counts", Text, nullable=False),  # JSON: queued, sent, failed, skipped {reason: n}, examined
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
)


def empty_counts() -> dict[str, Any]:
    return {"examined": 0, "queued": 0, "sent": 0, "failed": 0, "skipped": {}}


def add_counts(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    skipped = dict(total["skipped"])
    for reason, count in more["skipped"].items():
        skipped[reason] = skipped.get(reason, 0) + count
    return {**{key: total[key] + more[key] for key in ("examined", "queued", "sent", "failed")}, "skipped": skipped}


# A batch's claim is one multi-row insert written for the driver: through SQLAlchemy's executemany, the
# parameters of 500 rows were processed one by one. Lookups take their keys as one parameter (``among``).
_INSERT_CLAIMS = ("INSERT INTO care_messages (message_key, campaign_id, customer_id, occurrence, day, run_id, status, "
                  "updated_at) VALUES {rows} ON CONFLICT (message_key) DO NOTHING RETURNING message_key")
_CLAIM_ROW = "(" + ", ".join("?" * 8) + ")"


def claim(engine: Engine, run_id: str, rows: Sequence[dict[str, Any]], at: str) -> set[str]:
    """Claim message keys for ``run_id``; the keys this run holds afterwards (its own earlier claims included).

    ``rows`` is a batch (at most ``batch_size``, 500): its values stay well inside every driver's parameter limit.
    """
    if not rows:
        return set()
    values = tuple(value for row in rows for value in (row["message_key"], row["campaign_id"], row["customer_id"],
                                                       row["occurrence"], row["day"], run_id, "queued", at))
    statement = paramstyle(engine, _INSERT_CLAIMS.format(rows=", ".join([_CLAIM_ROW] * len(rows))))
    with engine.begin() as connection:
        inserted = {key for (key,) in connection.exec_driver_sql(statement, values)}
        # Keys already present are this run's own earlier claims or another run's.
        present = [row["message_key"] for row in rows if row["message_key"] not in inserted]
        return inserted | {key for key, holder, _status in _claims(connection, present) if holder == run_id}


def _claims(connection: Connection, keys: Sequence[str]) -> list[Any]:
    """``(message_key, run_id, status)`` of those of ``keys`` that are claimed."""
    if not keys:
        return []
    return connection.execute(select(care_messages.c.message_key, care_messages.c.run_id, care_messages.c.status)
                              .where(among(care_messages.c.message_key, keys, connection.dialect.name))).all()


def already_claimed(engine: Engine, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Of ``keys``, those claimed already, with the run that holds each and its status."""
    keys = list(keys)
    if not keys:
        return {}
    with engine.connect() as connection:
        return {key: (run_id, status) for key, run_id, status in _claims(connection, keys)}


def settle(engine: Engine, outcomes: dict[str, str], at: str) -> None:
    """Record ``sent`` or ``failed`` per key."""
    with engine.begin() as connection:
        for status in ("sent", "failed"):
            keys = [key for key, outcome in outcomes.items() if outcome == status]
            if keys:
                connection.execute(update(care_messages).values(status=status, updated_at=at)
                                   .where(among(care_messages.c.message_key, keys, engine.dialect.name)))


def recent_counts(engine: Engine, customer_ids: Iterable[str], on: date, days: int) -> dict[str, int]:
    """Care messages queued or sent to each customer in the ``days`` days up to ``on``, across campaigns."""
    customer_ids = list(customer_ids)
    if not customer_ids:
        return {}
    since = (on - timedelta(days=days - 1)).isoformat()
    with engine.connect() as connection:
        return dict(connection.execute(
            select(care_messages.c.customer_id, func.count())
            .where(among(care_messages.c.customer_id, customer_ids, engine.dialect.name),
                   care_messages.c.status != "failed", care_messages.c.day >= since,
                   care_messages.c.day <= on.isoformat())
            .group_by(care_messages.c.customer_id)).all())


def claimed_by(engine: Engine, run_id: str) -> dict[str, str]:
    """Every key ``run_id`` claimed, with its status."""
    with engine.connect() as connection:
        return dict(connection.execute(select(care_messages.c.message_key, care_messages.c.status)
                                       .where(care_messages.c.run_id == run_id)).all())


# -- runs -------------------------------------------------------------------------------

def start_run(connection: Connection, run_id: str, campaign_id: str, on_date: str, at: str) -> None:
    connection.execute(campaign_runs.insert().values(run_id=run_id, campaign_id=campaign_id, on_date=on_date,
                                                     status="running", counts=json.dumps(empty_counts()),
                                                     started_at=at))


def save_progress(engine: Engine, run_id: str, counts: dict[str, Any], status: str = "running",
                  finished_at: str | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(update(campaign_runs).where(campaign_runs.c.run_id == run_id)
                           .values(counts=json.dumps(counts), status=status, finished_at=finished_at))


def run_row(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(select(campaign_runs).where(campaign_runs.c.run_id == run_id)).mappings().first()
    return None if row is None else {**row, "counts": json.loads(row["counts"])}


def unfinished_runs(engine: Engine, campaign_id: str | None = None, on_date: str | None = None) -> list[dict]:
    query = select(campaign_runs).where(campaign_runs.c.status != "completed")
    if campaign_id is not None:
        query = query.where(campaign_runs.c.campaign_id == campaign_id)
    if on_date is not None:
        query = query.where(campaign_runs.c.on_date == on_date)
    with engine.connect() as connection:
        return [{**row, "counts": json.loads(row["counts"])}
                for row in connection.execute(query.order_by(campaign_runs.c.started_at)).mappings()]
