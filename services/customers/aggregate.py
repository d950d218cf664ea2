"""The customer as the command path sees it: its stream, its fold, its sealing and its answers.

PII leaves the domain in plain text; ``seal`` encrypts it with the
customer's data key before the log sees it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from contracts.customers import PII_FIELDS
from services.customers import domain
from shared.commands import AggregateKind
from shared.crypto import KeyRing
from shared.eventstore.envelope import NewEvent
from shared.eventstore.store import Appended


def seal(keys: KeyRing, customer: domain.Customer, events: Sequence[NewEvent]) -> list[NewEvent]:
    """Encrypt the PII of decided events with the customer's data key."""
    sealed = []
    for event in events:
        data = event.data
        if event.type == "CustomerRegistered":
            keys.create(customer.customer_id)  # new customer: no key to look up first
            data = keys.encrypt_fields(customer.customer_id, data, PII_FIELDS)
        elif event.type == "CustomerDetailsChanged":
            data = {**data, "changes": keys.encrypt_fields(customer.customer_id, data["changes"], PII_FIELDS)}
        sealed.append(replace(event, data=data))
    return sealed


def answer(customer: domain.Customer, appended: Appended | None) -> dict[str, Any]:
    return {"customer_id": customer.customer_id,
            "version": appended.version if appended is not None else customer.version}


def erasure_receipt(customer: domain.Customer, appended: Appended | None) -> dict[str, Any]:
    """The PII-free proof of erasure kept for the record."""
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
