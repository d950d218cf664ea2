"""The callback as the command path sees it: its stream, its fold, its sealing and its answers.

Notes and issue texts leave the domain in plain text; ``seal`` encrypts them
with the customer's data key (of the callbacks service) before the log sees
them, bound to the callback's stream and each field.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from contracts.callbacks import TEXT_FIELDS
from services.callbacks import domain
from shared.commands import AggregateKind
from shared.crypto import KeyRing
from shared.eventstore.envelope import NewEvent
from shared.eventstore.store import Appended


def seal(keys: KeyRing, callback: domain.Callback, events: Sequence[NewEvent]) -> list[NewEvent]:
    """Encrypt notes and issues of decided events with the customer's data key, bound to the callback's stream."""
    if not any(event.type in TEXT_FIELDS and any(event.data.get(name) for name in TEXT_FIELDS[event.type])
               for event in events):
        return list(events)
    key = keys.sealing_key(callback.customer_id)
    stream = domain.stream_of(callback.callback_id)
    return [replace(event, data=key.seal_fields(event.data, TEXT_FIELDS[event.type], stream))
            if event.type in TEXT_FIELDS else event for event in events]


def answer(callback: domain.Callback, appended: Appended | None) -> dict[str, Any]:
    """``callback_id``, new ``version``, the ``status`` and ``due_at`` the command left behind."""
    state = callback
    if appended is not None:
        for envelope in appended.envelopes:
            state = domain.evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.occurred_at)
    answer = {"callback_id": state.callback_id, "version": state.version, "status": state.status,
              "due_at": state.due_at, "attempts": state.attempts}
    if appended is not None:
        for envelope in appended.envelopes:
            if envelope.type == "CallbackScheduled" and envelope.data["moved"]:
                answer.update(moved=envelope.data["moved"], requested_at=envelope.data["requested_at"])
            if envelope.type == "CallbackIssueRaised":
                answer["issue_raised"] = True
    return answer


CALLBACK = AggregateKind(
    name="callback",
    stream_of=domain.stream_of,
    fold=domain.fold,
    answer=answer,
    seal=seal,
)


def _rules_answer(rules: domain.PeriodicRules, appended: Appended | None) -> dict[str, Any]:
    current = dict(rules.by_tier)
    if appended is not None:
        current.update(domain.fold_rules(appended.envelopes))
    return {"periodic_rules": current, "version": appended.version if appended else rules.version}


PERIODIC_RULES = AggregateKind(
    name="periodic-rules",
    stream_of=lambda _id: domain.RULES_STREAM,
    fold=lambda _id, envelopes: domain.PeriodicRules.fold(envelopes),
    answer=_rules_answer,
)
