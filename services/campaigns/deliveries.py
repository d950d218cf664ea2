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
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import Column, Index, MetaData, String, Table, Text, select, update
from sqlalchemy.engine import Connection, Engine

from shared.eventstore.engine import paramstyle

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


# The statements a run makes per batch go to the driver as written: SQLAlchemy's expanding ``IN``
# renders and names 500 parameters anew on every call, which cost more than the queries themselves.
_INSERT_CLAIMS = ("INSERT INTO care_messages (message_key, campaign_id, customer_id, occurrence, day, run_id, status, "
                  "updated_at) VALUES {rows} ON CONFLICT (message_key) DO NOTHING RETURNING message_key")
_SELECT_CLAIMS = "SELECT message_key, run_id, status FROM care_messages WHERE message_key IN {keys}"
_UPDATE_STATUS = "UPDATE care_messages SET status = ?, updated_at = ? WHERE message_key IN {keys}"
_SELECT_RECENT = ("SELECT customer_id, count(*) FROM care_messages WHERE customer_id IN {keys} "
                  "AND status != 'failed' AND day >= ? AND day <= ? GROUP BY customer_id")
_LISTED_AT_ONCE = 500  # keys per statement: a run's batch, well inside every driver's parameter limit
_CLAIM_WIDTH = 8


def _statement(engine: Engine, template: str, count: int) -> str:
    """``template`` with ``{keys}`` as ``count`` placeholders, ``{rows}`` as ``count`` claim rows."""
    row = "(" + ", ".join("?" * _CLAIM_WIDTH) + ")"
    return paramstyle(engine, template.format(keys="(" + ", ".join("?" * count) + ")",
                                              rows=", ".join([row] * count)))


def _in_chunks(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), _LISTED_AT_ONCE):
        yield keys[start:start + _LISTED_AT_ONCE]


def claim(engine: Engine, run_id: str, rows: Sequence[dict[str, Any]], at: str) -> set[str]:
    """Claim message keys for ``run_id``; the keys this run holds afterwards (its own earlier claims included)."""
    if not rows:
        return set()
    owned: set[str] = set()
    with engine.begin() as connection:
        for chunk in _in_chunks(rows):
            values = [value for row in chunk for value in (row["message_key"], row["campaign_id"], row["customer_id"],
                                                           row["occurrence"], row["day"], run_id, "queued", at)]
            inserted = {key for (key,) in connection.exec_driver_sql(
                _statement(engine, _INSERT_CLAIMS, len(chunk)), tuple(values))}
            # Keys already present are this run's own earlier claims or another run's.
            present = [row["message_key"] for row in chunk if row["message_key"] not in inserted]
            owned |= inserted | {key for key, holder, _status in _claims(connection, present) if holder == run_id}
    return owned


def _claims(connection: Connection, keys: Sequence[str]) -> list[tuple[str, str, str]]:
    if not keys:
        return []
    return connection.exec_driver_sql(_statement(connection.engine, _SELECT_CLAIMS, len(keys)), tuple(keys)).all()


def already_claimed(engine: Engine, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Of ``keys``, those claimed already, with the run that holds each and its status."""
    keys = list(keys)
    if not keys:
        return {}
    with engine.connect() as connection:
        return {key: (run_id, status) for chunk in _in_chunks(keys)
                for key, run_id, status in _claims(connection, chunk)}


def settle(engine: Engine, outcomes: dict[str, str], at: str) -> None:
    """Record ``sent`` or ``failed`` per key."""
    with engine.begin() as connection:
        for status in ("sent", "failed"):
            keys = [key for key, outcome in outcomes.items() if outcome == status]
            for chunk in _in_chunks(keys):
                connection.exec_driver_sql(_statement(engine, _UPDATE_STATUS, len(chunk)), (status, at, *chunk))


def recent_counts(engine: Engine, customer_ids: Iterable[str], on: date, days: int) -> dict[str, int]:
    """Care messages queued or sent to each customer in the ``days`` days up to ``on``, across campaigns."""
    customer_ids = list(customer_ids)
    if not customer_ids:
        return {}
    since = (on - timedelta(days=days - 1)).isoformat()
    with engine.connect() as connection:
        return {customer_id: count for chunk in _in_chunks(customer_ids)
                for customer_id, count in connection.exec_driver_sql(
                    _statement(engine, _SELECT_RECENT, len(chunk)), (*chunk, since, on.isoformat()))}


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
