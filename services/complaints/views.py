"""What the complaints service shows: one complaint, lists and stats.

Kept apart from the service class so that decrypting texts on the read
path and the figures are in one place and unit-tested without a broker.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from statistics import median
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, true
from sqlalchemy.engine import Engine

from contracts.complaints import CATEGORIES, STATUSES, TEXT_FIELDS
from services.complaints import domain
from services.complaints.projection import complaint_list
from shared.crypto import KeyRing
from shared.eventstore.envelope import Envelope

#: Roles that see complaint texts; others (auditors) see everything else.
TEXT_READERS = ("agent", "supervisor", "service", "admin")


# -- one complaint -------------------------------------------------------------------

_NOTES = {
    "ComplaintFiled": lambda d: f"filed by {d['channel']}: {d['category']}, urgency {d['urgency']} → {d['priority']}",
    "ComplaintClassified": lambda d: f"classified {d['previous_category']}/{d['previous_priority']} → "
                                     f"{d['category']}/{d['priority']}",
    "ComplaintAssigned": lambda d: f"assigned to {d['agent']}" + (f" (was {d['previous_agent']})"
                                                                   if d["previous_agent"] else ""),
    "ComplaintResponded": lambda d: "first reply" if d["first_reply"] else "replied",
    "ComplaintInfoRequested": lambda d: "asked the customer; SLA clock paused",
    "ComplaintCustomerReplied": lambda d: "the customer answered; SLA clock resumed",
    "ComplaintEscalated": lambda d: f"escalated to level {d['level']}"
                                    + (f" (SLA breach: {d['target']})" if d["trigger"] == "sla_breach" else ""),
    "ComplaintResolved": lambda d: "resolved",
    "ComplaintConfirmed": lambda d: ("customer satisfied" if d["satisfied"] else "customer not satisfied")
                                    + (f", score {d['score']}" if d["score"] is not None else ""),
    "ComplaintReopened": lambda d: f"reopened (reopen {d['reopen_count']})",
    "ComplaintClosed": lambda d: f"closed: {d['reason']}",
    "ComplaintConfirmationReminded": lambda d: f"confirmation reminder; closes itself at {d['closes_at']}",
    "ComplaintSlaWarning": lambda d: f"SLA warning: {d['target']} due {d['due']}",
    "ComplaintSlaBreached": lambda d: f"SLA breached: {d['target']} was due {d['due']}",
}


#: History entries whose text is a reason a person gave; every other text is a message.
_REASONS = {"ComplaintEscalated": "reasons", "ComplaintReopened": "reasons"}


def complaint_view(keys: KeyRing, state: domain.Complaint, envelopes: list[Envelope], rules: domain.Rules,
                   now: datetime, show_texts: bool) -> dict[str, Any]:
    """The whole complaint: where it stands, its SLA, and its history (texts only for ``show_texts``)."""
    filed = envelopes[0].data
    key = keys.opening_key(state.customer_id) if show_texts else None
    stream = domain.stream_of(state.complaint_id)
    texts = key.open_fields(filed, TEXT_FIELDS["ComplaintFiled"], stream) if key is not None else {}
    resolution = None
    history = []
    for envelope in envelopes:
        note = _NOTES.get(envelope.type)
        entry = {"at": envelope.occurred_at, "type": envelope.type, "actor": envelope.actor,
                 "note": note(envelope.data) if note else envelope.type}
        names = TEXT_FIELDS.get(envelope.type, ())
        if key is not None and names and envelope.type != "ComplaintFiled":
            entry["text"] = key.open(envelope.data[names[0]], stream, names[0])
            if envelope.type == "ComplaintResolved":
                resolution = entry["text"]
        history.append(entry)
    running = {entry["target"]: entry["state"] for entry in domain.running_targets(state, now, rules)}
    return {
        "complaint_id": state.complaint_id, "version": state.version, "customer_id": state.customer_id,
        "status": state.status, "escalation_level": state.escalation_level, "priority": state.priority,
        "category": state.category, "urgency": state.urgency, "channel": state.channel,
        "assignee": state.assignee, "related_complaint_id": state.related_complaint_id,
        "callback_id": state.callback_id,
        "summary": texts.get("summary"), "description": texts.get("description"), "resolution": resolution,
        "texts_shown": show_texts,
        **domain.due_times(state, rules),
        "sla": running, "waiting_on_customer_since": state.waiting_since,
        "breaches": [dict(breach) for breach in state.breaches],
        "filed_at": state.filed_at, "first_replied_at": state.first_replied_at, "resolved_at": state.resolved_at,
        "closed_at": state.closed_at, "close_reason": state.close_reason, "reopen_count": state.reopen_count,
        "satisfied": state.satisfied, "score": state.score, "allowed_actions": list(domain.ALLOWED_ACTIONS[state.status]),
        "history": history,
    }


def texts_in(view: dict[str, Any]) -> list[str]:
    """The texts a complaint view shows in clear: what recording the read must name."""
    shown = [name for name in ("summary", "description", "resolution") if view[name] is not None]
    in_history = {_REASONS.get(entry["type"], "messages") for entry in view["history"] if entry.get("text") is not None}
    return shown + sorted(in_history)


# -- lists ---------------------------------------------------------------------------

LIST_COLUMNS = ("complaint_id", "customer_id", "status", "escalation_level", "priority", "category", "channel",
                "assignee", "summary", "breached", "filed_at", "resolved_at", "closed_at", "reopen_count",
                "score", "version")


def list_complaints(engine: Engine, query: dict[str, Any], show_summary: bool) -> dict[str, Any]:
    """A page of the complaint list, newest first."""
    table = complaint_list
    conditions = [getattr(table.c, name) == query[name]
                  for name in ("status", "assignee", "category", "priority", "customer_id", "breached")
                  if query.get(name) is not None]
    where = and_(true(), *conditions)
    page, size = query["page"], query["page_size"]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        rows = connection.execute(select(*(getattr(table.c, name) for name in LIST_COLUMNS)).where(where)
                                  .order_by(table.c.filed_at.desc(), table.c.complaint_id)
                                  .limit(size).offset((page - 1) * size)).mappings().all()
    items = [{**row, "summary": row["summary"] if show_summary else None} for row in rows]
    return {"items": items, "page": page, "page_size": size, "total": total}


# -- stats -----------------------------------------------------------------------------

def window(since: str | None, until: str | None, zone: ZoneInfo) -> tuple[str | None, str | None]:
    """Bounds as log time text; a bare day starts at midnight in the working time zone."""
    def bound(value: str | None) -> str | None:
        if value is None or len(value) != 10:
            return value
        return domain.iso(datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone))

    return bound(since), bound(until)


def stats(engine: Engine, since: str | None, until: str | None, zone: ZoneInfo) -> dict[str, Any]:
    """Figures over the complaints filed in ``[since, until)`` (either bound optional)."""
    since, until = window(since, until, zone)
    table = complaint_list
    conditions = [true()]
    if since:
        conditions.append(table.c.filed_at >= since)
    if until:
        conditions.append(table.c.filed_at < until)
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.category, table.c.status, table.c.filed_at,
                                         table.c.first_replied_at, table.c.first_resolved_at,
                                         table.c.reopen_count, table.c.breached, table.c.score, table.c.satisfied)
                                  .where(and_(*conditions))).mappings().all()
    return summarise(rows, since, until)


def summarise(rows: Iterable[dict[str, Any]], since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The figures of ``stats`` from list rows (pure, unit-tested)."""
    rows = list(rows)
    total = len(rows)
    by_category = {category: 0 for category in CATEGORIES}
    by_status = {status: 0 for status in STATUSES}
    for row in rows:
        by_category[row["category"]] += 1
        by_status[row["status"]] += 1
    first_reply = [_hours(row["filed_at"], row["first_replied_at"]) for row in rows if row["first_replied_at"]]
    resolution = [_hours(row["filed_at"], row["first_resolved_at"]) for row in rows if row["first_resolved_at"]]
    resolved = [row for row in rows if row["first_resolved_at"]]
    scores = [row["score"] for row in rows if row["score"] is not None]
    confirmed = [row for row in rows if row["satisfied"] is not None]
    return {
        "since": since, "until": until, "total": total,
        "by_category": by_category, "by_status": by_status,
        "first_reply_hours": _spread(first_reply),
        "resolution_hours": _spread(resolution),
        "sla_compliance_pct": _pct(sum(1 for row in rows if not row["breached"]), total),
        "resolution_rate_pct": _pct(len(resolved), total),
        "reopen_rate_pct": _pct(sum(1 for row in resolved if row["reopen_count"]), len(resolved)),
        "satisfaction": {"average_score": round(sum(scores) / len(scores), 2) if scores else None,
                         "scored": len(scores),
                         "satisfied_pct": _pct(sum(1 for row in confirmed if row["satisfied"]), len(confirmed))},
    }


def _hours(start: str, end: str) -> float:
    return (domain.parse(end) - domain.parse(start)) / timedelta(hours=1)


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]  # nearest rank
    return {"count": len(values), "median": round(median(ordered), 2), "p90": round(p90, 2)}


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None
