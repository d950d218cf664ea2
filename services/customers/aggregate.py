"""The customer as the command path sees it: its stream, its fold, its sealing and its answers.

PII and free texts leave the domain in plain text; ``seal`` encrypts them
with the customer's data key before the log sees them, bound to the
customer's stream and each field; ``open_event`` reads them back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from contracts.customers import PII_FIELDS, SEALED_FIELDS
from services.customers import domain
from shared.commands import AggregateKind
from shared.crypto import KeyRing, SubjectKey
from shared.eventstore.envelope import NewEvent
from shared.eventstore.store import Appended

FieldsChange = Callable[[dict[str, Any], Iterable[str]], dict[str, Any]]
SEALING_EVENTS = frozenset({*SEALED_FIELDS, "CustomerDetailsChanged"})


def _sealed_parts(event_type: str, data: dict[str, Any], change: FieldsChange) -> dict[str, Any]:
    """``data`` with ``change(fields, names)`` applied to the parts of it that are sealed."""
    if event_type == "CustomerDetailsChanged":
        return {**data, "changes": change(data["changes"], PII_FIELDS)}
    return change(data, SEALED_FIELDS.get(event_type, ()))


def seal(keys: KeyRing, customer: domain.Customer, events: Sequence[NewEvent]) -> list[NewEvent]:
    """Encrypt the PII and free texts of decided events with the customer's data key."""
    if not any(event.type in SEALING_EVENTS for event in events):
        return list(events)
    customer_id = customer.customer_id
    new = events[0].type == "CustomerRegistered"  # no key to look up first
    key = keys.create(customer_id) if new else keys.sealing_key(customer_id)
    stream = domain.stream_of(customer_id)
    return [replace(event, data=_sealed_parts(event.type, event.data,
                                              lambda data, names: key.seal_fields(data, names, stream)))
            for event in events]


def open_event(key: SubjectKey, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The data of a customer's event with its sealed fields opened (``None`` where the key is gone)."""
    stream = domain.stream_of(key.subject_id)
    return _sealed_parts(event_type, data, lambda fields, names: key.open_fields(fields, names, stream))


def answer(customer: domain.Customer, appended: Appended | None) -> dict[str, Any]:
    return {"customer_id": customer.customer_id,
            "version": appended.version if appended is not None else customer.version}


def erasure_receipt(customer: domain.Customer, appended: Appended | None) -> dict[str, Any]:
    """The PII-free proof of erasure kept for the record (its reason is a code, never free text)."""
    erased = appended.envelopes[-1]
    return {**answer(customer, appended),
            "receipt": {"receipt_id": erased.data["receipt_id"], "customer_id": customer.customer_id,
                        "reason": erased.data["reason"], "erased_at": erased.data["erased_at"],
                        "erased_by": erased.actor["id"], "event_id": erased.event_id,
                        "position": erased.position}}


CUSTOMER = AggregateKind(
    name="customer",
    stream_of=domain.stream_of,
    fold=domain.fold,
    answer=answer,
    seal=seal,
)
