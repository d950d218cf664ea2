"""Reads of the ledger: replay pages, a customer's record as of a time, exports, and the sources' own logs.

A replay page is keyed by ledger position (``position > cursor``), and a
position is given in commit order and never reused, so a cursor stays
valid however many entries arrive meanwhile: nothing is missed or repeated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from sqlalchemy import func, select, union
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from services.audit.ledger import ENVELOPE_COLUMNS, Ledger, entry_view, entry_views, ledger, ledger_customers
from shared.consumers import as_envelope
from shared.discovery import discovered_services

_COLUMNS = [ledger.c[name] for name in ENVELOPE_COLUMNS]


def _concerning(customer_id: str, after: int, upto: int | None) -> ColumnElement[bool]:
    """Entries about the customer: named in the entry's ``customer_id``, or listed in a batch's ``customer_ids``.

    One set of positions from both indexes, each searched from ``after``
    to ``upto`` (a page reads only its part), then the ledger by primary key.
    """
    return ledger.c.position.in_(union(
        select(ledger.c.position).where(ledger.c.customer_id == customer_id,
                                        *_between(ledger.c.position, after, upto)),
        select(ledger_customers.c.position).where(ledger_customers.c.customer_id == customer_id,
                                                  *_between(ledger_customers.c.position, after, upto))))


def _between(position: ColumnElement[int], after: int, upto: int | None) -> list[ColumnElement[bool]]:
    return [position > after, *([position <= upto] if upto is not None else [])]


def _filtered(filters: Mapping[str, Any], after: int = 0, upto: int | None = None):
    """The entries after ``after`` (up to ``upto``) that match ``filters``, in ledger order."""
    query = select(*_COLUMNS).where(*_between(ledger.c.position, after, upto)).order_by(ledger.c.position)
    conditions = {"service": ledger.c.source_service, "stream_id": ledger.c.stream_id, "type": ledger.c.type}
    for name, column in conditions.items():
        if filters.get(name) is not None:
            query = query.where(column == filters[name])
    if filters.get("customer_id") is not None:
        query = query.where(_concerning(filters["customer_id"], after, upto))
    if filters.get("since") is not None:
        query = query.where(ledger.c.recorded_at >= filters["since"])
    if filters.get("until") is not None:
        query = query.where(ledger.c.recorded_at <= filters["until"])
    return query


def replay(engine: Engine, filters: Mapping[str, Any], cursor: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` entries after ``cursor`` that match ``filters``; ``next_cursor`` to go on from."""
    query = _filtered(filters, after=cursor).limit(limit)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
        head = connection.execute(select(func.coalesce(func.max(ledger.c.position), 0))).scalar_one()
    entries = entry_views(rows)
    return {"entries": entries, "next_cursor": entries[-1]["ledger_position"] if entries else cursor,
            "head": head, "more": len(entries) == limit}


def export_entries(engine: Engine, ledger_of: Ledger, filters: Mapping[str, Any], limit: int,
                   tree_size: int) -> list[dict[str, Any]]:
    """The filtered entries within the first ``tree_size``, each with its inclusion proof in that tree."""
    query = _filtered(filters, upto=tree_size).limit(limit)
    with engine.connect() as connection:
        entries = entry_views(connection.execute(query))
        for entry in entries:
            entry["proof"] = ledger_of.inclusion(connection, entry["ledger_position"], tree_size)["path"]
    return entries


def customer_record_kind() -> tuple[str, Any] | None:
    """The service keeping the customer file and its ``AggregateKind`` (stream and fold), found by discovery."""
    for name, spec in discovered_services().items():
        kind = spec.load_customer_record()
        if kind is not None:
            return name, kind
    return None


def state_as_of(engine: Engine, customer_id: str, at: str) -> dict[str, Any]:
    """The customer's record at ``at``: their stream's events recorded by then, folded by their service's fold.

    Personal data stays as the ledger holds it, sealed; the answer lists
    which fields were sealed rather than their ciphertext.
    """
    found = customer_record_kind()
    if found is None:
        return {"customer_id": customer_id, "at": at, "record": None, "events": 0}
    service, kind = found
    query = select(*_COLUMNS).where(ledger.c.source_service == service,
                                    ledger.c.stream_id == kind.stream_of(customer_id),
                                    ledger.c.recorded_at <= at).order_by(ledger.c.position)
    with engine.connect() as connection:
        envelopes = [as_envelope(entry_view(row)) for row in connection.execute(query)]
    if not envelopes:
        return {"customer_id": customer_id, "at": at, "record": None, "events": 0}
    state = kind.fold(customer_id, envelopes)
    return {"customer_id": customer_id, "at": at, "service": service, "events": len(envelopes),
            "as_of_position": envelopes[-1].position, "record": _record_view(state)}


def _record_view(state: Any) -> dict[str, Any]:
    record = dataclasses.asdict(state) if dataclasses.is_dataclass(state) else dict(state)
    profile = record.pop("profile", {}) or {}
    sealed = sorted(name for name, value in profile.items() if isinstance(value, str) and value.startswith("enc:"))
    for name, value in list(record.items()):
        if isinstance(value, (set, frozenset)):
            record[name] = sorted(value)
    return {**record, **{name: value for name, value in profile.items() if name not in sealed},
            "sealed_fields": sealed}


def check_sources(engine: Engine, fetch: Callable[[str, int, int], list[dict[str, Any]]]) -> dict[str, Any]:
    """Hold each source's last ledger entry against the source's own log now: cut short or recomputed?

    The ledger keeps a signed copy of every source event, so a source whose
    log no longer has the event at that position, or has another there,
    was cut short or rewritten after the fact.
    """
    query = (select(ledger.c.source_service, func.max(ledger.c.position)).group_by(ledger.c.source_service))
    sources: dict[str, Any] = {}
    with engine.connect() as connection:
        for service, position in connection.execute(query).all():
            source_position, source_hash = connection.execute(
                select(ledger.c.source_position, ledger.c.source_hash).where(ledger.c.position == position)).one()
            sources[service] = (position, source_position, source_hash)
    report: dict[str, Any] = {"sources": {}}
    for service, (position, source_position, source_hash) in sorted(sources.items()):
        try:
            found = fetch(service, source_position - 1, 1)
        except Exception as error:  # noqa: BLE001 - a source that is down is reported, not fatal
            report["sources"][service] = {"ok": None, "reason": f"not reachable: {type(error).__name__}"}
            continue
        if not found or found[0]["position"] != source_position:
            problem = f"cut short: the {service} log no longer holds position {source_position}"
        elif found[0]["hash"] != source_hash:
            problem = f"recomputed: the {service} event at position {source_position} is not the one recorded"
        else:
            report["sources"][service] = {"ok": True, "checked_position": source_position}
            continue
        report["sources"][service] = {"ok": False, "reason": problem}
        if report.get("ok", True):
            report.update(ok=False, first_bad_position=position, reason=f"source {problem}", source=service)
    return report


