"""What the customers service shows: views of one customer, contact details, exports and searches.

Kept apart from the service class so that masking and decryption on the
read path live in one place and are unit-tested without a broker. Lists
mask the name, phone and email for every role, so a search is never a read
in clear; one customer is shown in clear only where the service records
the read (``PiiAccessed``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Engine

from contracts.customers import CONSENT_PURPOSES, PII_FIELDS, REVEALED_FIELDS
from services.customers.aggregate import open_event
from services.customers.domain import BATCH_ACCESS_PREFIX, Customer, access_stream_of, stream_of
from services.customers.masking import MASKS, mask_email, mask_name, mask_phone
from services.customers.projection import directory, tags
from shared.birthdays import Celebrated
from shared.crypto import KeyRing, SubjectKey
from shared.eventstore.store import EventStore
from shared.sql_lists import among


def customer_view(keys: KeyRing, customer: Customer, masked: bool) -> dict[str, Any]:
    """One customer; with ``masked``, every PII field shows only its mask."""
    profile = _opened_profile(keys.opening_key(customer.customer_id), customer)
    if masked:
        profile.update({field: mask(profile.get(field)) for field, mask in MASKS.items()})
    return {
        "customer_id": customer.customer_id, "version": customer.version, "status": customer.status,
        "tier": customer.tier, "consents": sorted(customer.consents),
        **{field: profile.get(field) for field in PII_FIELDS},
        "birthday_calendar": profile.get("birthday_calendar"), "locale": profile.get("locale"),
        "timezone": profile.get("timezone"), "tags": profile.get("tags", []),
        "registered_at": customer.registered_at, "updated_at": customer.updated_at,
        "erasure": customer.erasure,
    }


def contact_view(keys: KeyRing, customer: Customer, purpose: str) -> dict[str, Any]:
    """In clear, the PII ``purpose`` needs (``REVEALED_FIELDS``), and how to address the customer."""
    profile = _opened_profile(keys.opening_key(customer.customer_id), customer)
    return {"customer_id": customer.customer_id, **{field: profile.get(field) for field in REVEALED_FIELDS[purpose]},
            "birthday_calendar": profile.get("birthday_calendar"), "locale": profile.get("locale"),
            "timezone": profile.get("timezone"), "consents": sorted(customer.consents)}


def contacts(engine: Engine, customer_ids: list[str], purpose: str) -> tuple[list[dict], list[dict]]:
    """``contact_view`` of many customers from the directory, and those refused with the reason.

    The directory holds the PII opened; a customer is refused as
    ``unknown``, ``erased`` or, for a purpose that needs consent,
    ``no_consent``. Contacts come back in the order asked.
    """
    with engine.connect() as connection:  # one fetch: row by row costs most of a batch
        rows = {row.customer_id: row for row in connection.execute(
            select(directory).where(among(directory.c.customer_id, customer_ids, engine.dialect.name))).all()}
    found, refused = [], []
    for customer_id in customer_ids:
        row = rows.get(customer_id)
        consents = json.loads(row.consents) if row is not None else []
        reason = _refusal(row, consents, purpose)
        if reason:
            refused.append({"customer_id": customer_id, "reason": reason})
            continue
        found.append({"customer_id": customer_id, **{field: getattr(row, field) for field in REVEALED_FIELDS[purpose]},
                      "birthday_calendar": row.birthday_calendar, "locale": row.locale,
                      "timezone": row.timezone, "tier": row.tier, "consents": consents})
    return found, refused


def due_birthdays(engine: Engine, celebrated: Celebrated, after: str | None, limit: int) -> dict[str, Any]:
    """A page of ``{customer_ids, next}`` (``next`` is the ``after`` of the next page, or None)."""
    month_day, born = func.substr(directory.c.birthday, 6, 5), func.substr(directory.c.birthday, 1, 4)
    calendars = [and_(directory.c.birthday_calendar == calendar, month_day.in_(days), born < str(year))
                 for calendar, days, year in (("gregorian", celebrated.gregorian, celebrated.gregorian_year),
                                              ("lunar", celebrated.lunar, celebrated.lunar_year)) if days]
    query = (select(directory.c.customer_id)
             .where(directory.c.status == "active", directory.c.birthday.is_not(None),
                    directory.c.consents.like('%"care_messages"%'), or_(*calendars))
             .order_by(directory.c.customer_id).limit(limit))
    if after is not None:
        query = query.where(directory.c.customer_id > after)
    with engine.connect() as connection:
        ids = connection.execute(query).scalars().all()  # one fetch: row by row costs most of a page
    return {"customer_ids": ids, "next": ids[-1] if len(ids) == limit else None}


def _refusal(row: Any, consents: list[str], purpose: str) -> str | None:
    if row is None:
        return "unknown"
    if row.status != "active":
        return "erased"
    if purpose in CONSENT_PURPOSES and purpose not in consents:
        return "no_consent"
    return None


def subject_export(keys: KeyRing, store: EventStore, customer: Customer) -> dict[str, Any]:
    """The customer's own copy: current record plus every recorded event about them, readable."""
    key = keys.opening_key(customer.customer_id)
    history = [{"type": envelope.type, "recorded_at": envelope.recorded_at, "actor": envelope.actor,
                "data": open_event(key, envelope.type, envelope.data)}
               for envelope in store.read_stream(stream_of(customer.customer_id))]
    accesses = [{"recorded_at": envelope.recorded_at, "actor": envelope.actor, **envelope.data}
                for envelope in store.read_stream(access_stream_of(customer.customer_id))]
    accesses.extend(_batch_reveals_of(store, customer.customer_id))
    return {"customer": customer_view(keys, customer, masked=False), "history": history, "pii_accesses": accesses}


def _batch_reveals_of(store: EventStore, customer_id: str) -> list[dict[str, Any]]:
    """The customer's reveals in ``reveal_contacts`` batches: a scan of the log (a rare, admin-only read).

    A batch lists every customer it revealed (``customer_ids``); the
    customer's copy shows it as their own read, without the others' ids.
    Batches recorded before that name one customer each (``customer_id``).
    """
    reveals = []
    for envelope in store.iter_since(0):
        if envelope.type != "PiiAccessed" or not envelope.stream_id.startswith(BATCH_ACCESS_PREFIX):
            continue
        data = envelope.data
        if customer_id == data.get("customer_id") or customer_id in data.get("customer_ids", ()):
            reveals.append({"recorded_at": envelope.recorded_at, "actor": envelope.actor, "customer_id": customer_id,
                            **{key: data[key] for key in ("purpose", "fields", "method")}})
    return reveals


def _opened_profile(key: SubjectKey, customer: Customer) -> dict[str, Any]:
    """The folded profile with its PII opened (all sealed in the customer's stream)."""
    return key.open_fields(customer.profile, PII_FIELDS, stream_of(customer.customer_id))


def find(engine: Engine, query: dict[str, Any]) -> dict[str, Any]:
    """Page through the directory; names and contact details are masked for everyone."""
    conditions = [directory.c.status == "active"]
    if query["phone"]:
        conditions.append(directory.c.phone == query["phone"])
    if query["email"]:
        conditions.append(directory.c.email == query["email"])
    if query["name_prefix"]:
        prefix = query["name_prefix"].casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(directory.c.name_key.like(prefix + "%", escape="\\"))
    if query["tier"]:
        conditions.append(directory.c.tier == query["tier"])
    if query["tag"]:
        conditions.append(directory.c.customer_id.in_(select(tags.c.customer_id).where(tags.c.tag == query["tag"])))
    where = and_(*conditions)
    page, size = query["page"], query["page_size"]
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(directory).where(where)).scalar_one()
        rows = connection.execute(select(directory).where(where)
                                  .order_by(directory.c.registered_at.desc(), directory.c.customer_id)
                                  .limit(size).offset((page - 1) * size)).mappings().all()
        tag_rows = connection.execute(select(tags).where(tags.c.customer_id.in_([row["customer_id"] for row in rows]))).all()
    tags_of: dict[str, list[str]] = {}
    for customer_id, tag in tag_rows:
        tags_of.setdefault(customer_id, []).append(tag)
    items = [{"customer_id": row["customer_id"], "name": mask_name(row["name"]), "phone": mask_phone(row["phone"]),
              "email": mask_email(row["email"]), "tier": row["tier"], "tags": sorted(tags_of.get(row["customer_id"], [])),
              "consents": json.loads(row["consents"]), "locale": row["locale"], "version": row["version"],
              "registered_at": row["registered_at"]} for row in rows]
    return {"items": items, "page": page, "page_size": size, "total": total}
