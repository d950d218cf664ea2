"""What the callbacks service shows: one callback, an agent's queue and the KPIs.

Kept apart from the service class so that opening notes on the read path
and the figures are in one place and unit-tested without a broker.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine

from contracts.callbacks import TEXT_FIELDS
from services.callbacks import domain
from services.callbacks.projection import callback_attempts, callback_complaints, callback_list
from shared.crypto import KeyRing
from shared.eventstore.envelope import Envelope

#: Roles that see notes and issues in clear; auditors see everything else.
TEXT_READERS = ("agent", "supervisor", "admin")

_NOTES = {
    "CallbackScheduled": lambda d: f"scheduled ({d['origin']}), due {d['due_at']}"
                                   + (f"; {d['moved']}" if d["moved"] else ""),
    "CallbackAttempted": lambda d: f"attempt {d['attempt']} by {d['agent']}: {d['outcome']}"
                                   + (f", satisfaction {d['satisfaction']}" if d["satisfaction"] else "")
                                   + ("" if d["script_followed"] is None
                                      else ", script followed" if d["script_followed"] else ", script not followed")
                                   + (f"; next try due {d['next_due_at']}" if d["next_due_at"] else ""),
    "CallbackReturnedToPool": lambda d: f"returned to the team pool from {d['previous_assignee']} "
                                        f"({d['overdue_minutes']} min overdue)",
    "CallbackCompleted": lambda d: f"completed after {d['attempts']} attempt(s)",
    "CallbackFailed": lambda d: f"failed: {d['reason']} after {d['attempts']} attempt(s)",
    "CallbackCancelled": lambda d: f"cancelled: {d['reason']}",
    "CallbackIssueRaised": lambda d: f"issue raised ({d['category']}); filed as a complaint",
}


def callback_view(keys: KeyRing, state: domain.Callback, envelopes: list[Envelope], links: list[dict[str, Any]],
                  show_texts: bool) -> dict[str, Any]:
    """The whole callback: where it stands, its attempts (notes for ``show_texts``) and its linked complaints."""
    key = keys.opening_key(state.customer_id) if show_texts else None
    stream = domain.stream_of(state.callback_id)
    history, scheduled = [], envelopes[0].data
    for envelope in envelopes:
        note = _NOTES.get(envelope.type)
        entry = {"at": envelope.occurred_at, "type": envelope.type, "actor": envelope.actor,
                 "note": note(envelope.data) if note else envelope.type}
        names = TEXT_FIELDS.get(envelope.type, ())
        if key is not None and names and envelope.data.get(names[0]) is not None:
            entry["text"] = key.open(envelope.data[names[0]], stream, names[0])
        history.append(entry)
    return {
        "callback_id": state.callback_id, "version": state.version, "customer_id": state.customer_id,
        "kind": state.kind, "status": state.status, "due_at": state.due_at, "timezone": state.timezone,
        "priority": state.priority, "assignee": state.assignee, "origin": state.origin,
        "complaint_id": state.complaint_id, "attempts": state.attempts, "max_attempts": state.max_attempts,
        "outcome": state.outcome, "satisfaction": state.satisfaction, "script_followed": state.script_followed,
        "scheduled_at": state.scheduled_at, "closed_at": state.closed_at, "close_reason": state.close_reason,
        "sample": scheduled.get("sample"), "moved": scheduled.get("moved"),
        "linked_complaints": links, "texts_shown": show_texts, "history": history,
    }


def texts_in(view: dict[str, Any]) -> list[str]:
    """The texts a view shows in clear: what recording the read must name."""
    return sorted({"notes" if entry["type"] == "CallbackAttempted" else "issue"
                   for entry in view["history"] if entry.get("text") is not None})


def linked_complaints(engine: Engine, callback_id: str) -> list[dict[str, Any]]:
    table = callback_complaints
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.complaint_id, table.c.status, table.c.filed_at, table.c.resolved_at,
                                         table.c.closed_at).where(table.c.callback_id == callback_id)
                                  .order_by(table.c.filed_at, table.c.complaint_id)).mappings().all()
    return [dict(row) for row in rows]


# -- the queue ----------------------------------------------------------------------------

DUE_COLUMNS = ("callback_id", "customer_id", "kind", "due_at", "priority", "assignee", "attempts", "origin",
               "complaint_id", "version")


def list_due(engine: Engine, before: str, assignee: str | None, include_pool: bool, limit: int,
             kind: str | None = None) -> dict[str, Any]:
    """Pending callbacks due before ``before`` (of ``kind``, if given): by due time, then priority (urgent first)."""
    table = callback_list
    conditions = [table.c.status == domain.OPEN, table.c.due_at <= before]
    if kind is not None:
        conditions.append(table.c.kind == kind)
    if assignee is not None:
        mine = table.c.assignee == assignee
        conditions.append(or_(mine, table.c.assignee.is_(None)) if include_pool else mine)
    with engine.connect() as connection:
        rows = connection.execute(select(*(getattr(table.c, name) for name in DUE_COLUMNS)).where(and_(*conditions))
                                  .order_by(table.c.due_at, table.c.priority_rank, table.c.callback_id)
                                  .limit(limit)).mappings().all()
    return {"before": before, "assignee": assignee, "items": [dict(row) for row in rows]}


# -- KPIs -------------------------------------------------------------------------------

def bound(value: str, zone: ZoneInfo) -> str:
    """A day as its midnight in ``zone``; an instant as it is (log time text)."""
    if len(value) != 10:
        return value
    return domain.iso(datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone))


def kpis(engine: Engine, since: str, until: str, zone: ZoneInfo) -> dict[str, Any]:
    """The figures over the calls made in ``[since, until)``; days are counted in ``zone``."""
    since, until = bound(since, zone), bound(until, zone)
    table = callback_attempts
    with engine.connect() as connection:
        rows = connection.execute(select(table).where(table.c.attempted_at >= since, table.c.attempted_at < until)
                                  ).mappings().all()
    attempts = [{**row, "day": domain.parse(row["attempted_at"]).astimezone(zone).date().isoformat()} for row in rows]
    return {"since": since, "until": until, "timezone": zone.key, **domain.kpi_figures(attempts)}
