"""The complaint as the command path sees it: its stream, its fold, its sealing and its answers.

Free texts leave the domain in plain text; ``seal`` encrypts them with the
customer's data key (of the complaints service) before the log sees them,
bound to the complaint's stream and each field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from contracts.complaints import TEXT_FIELDS
from services.complaints import domain
from shared.commands import AggregateKind
from shared.crypto import KeyRing
from shared.eventstore.envelope import NewEvent
from shared.eventstore.store import Appended


def seal(keys: KeyRing, complaint: domain.Complaint, events: Sequence[NewEvent]) -> list[NewEvent]:
    """Encrypt the free texts of decided events with the customer's data key, bound to the complaint's stream."""
    if not any(event.type in TEXT_FIELDS for event in events):
        return list(events)
    key = keys.sealing_key(complaint.customer_id or events[0].data["customer_id"])  # a new one names its customer
    stream = domain.stream_of(complaint.complaint_id)
    return [replace(event, data=key.seal_fields(event.data, TEXT_FIELDS[event.type], stream))
            if event.type in TEXT_FIELDS else event for event in events]


def answer(complaint: domain.Complaint, appended: Appended | None) -> dict[str, Any]:
    """``complaint_id``, new ``version`` and the ``status`` the command left behind."""
    status, version = complaint.status, complaint.version
    if appended is not None:
        for envelope in appended.envelopes:
            status = domain.status_after(status, envelope.type)
        version = appended.version
    return {"complaint_id": complaint.complaint_id, "version": version, "status": status}


def filed_answer(complaint: domain.Complaint, appended: Appended | None) -> dict[str, Any]:
    """What ``file`` answers: the id, version, priority and the due times it set."""
    data = appended.envelopes[0].data
    return {**answer(complaint, appended), "priority": data["priority"], "first_reply_due": data["first_reply_due"],
            "next_reply_due": None, "resolution_due": data["resolution_due"]}


COMPLAINT = AggregateKind(
    name="complaint",
    stream_of=domain.stream_of,
    fold=domain.fold,
    answer=answer,
    seal=seal,
)
