"""The customer aggregate: pure decide and evolve functions, no I/O.

``decide_*`` functions take the current state and a validated command and
return the events to append (or raise ``Conflict``); ``evolve`` applies one
event to the state. PII arrives here in plain text; the service seals it
before the log sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from contracts.customers import PII_FIELDS
from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope, NewEvent, new_id


def stream_of(customer_id: str) -> str:
    return f"customer-{customer_id}"


def access_stream_of(customer_id: str) -> str:
    """PII reads go to their own stream so reading never bumps the customer's version."""
    return f"pii-access-{customer_id}"


BATCH_ACCESS_PREFIX = "pii-access-batch-"


def batch_access_stream(batch_id: str) -> str:
    """The stream of one ``reveal_contacts`` batch's record, apart from any one customer's reads."""
    return f"{BATCH_ACCESS_PREFIX}{batch_id}"


@dataclass(frozen=True)
class Customer:
    customer_id: str
    version: int = 0
    status: str = "new"  # new, active, erased
    tier: str = "general"
    consents: frozenset[str] = frozenset()
    profile: dict[str, Any] = field(default_factory=dict)
    registered_at: str | None = None
    updated_at: str | None = None
    erasure: dict[str, Any] | None = None

    def require_active(self) -> None:
        if self.status == "new":
            raise NotFound(f"no customer {self.customer_id}")
        if self.status == "erased":
            raise Conflict(f"customer {self.customer_id} was erased; no further changes are possible")


def evolve(state: Customer, event_type: str, data: dict[str, Any], version: int, at: str) -> Customer:
    state = replace(state, version=version, updated_at=at)
    if event_type == "CustomerRegistered":
        profile = {key: value for key, value in data.items() if key not in ("customer_id", "tier", "consents")}
        return replace(state, status="active", tier=data["tier"], consents=frozenset(data["consents"]),
                       profile=profile, registered_at=at)
    if event_type == "CustomerDetailsChanged":
        return replace(state, profile={**state.profile, **data["changes"]})
    if event_type == "CustomerTierChanged":
        return replace(state, tier=data["tier"])
    if event_type == "ConsentGiven":
        return replace(state, consents=state.consents | {data["purpose"]})
    if event_type == "ConsentWithdrawn":
        return replace(state, consents=state.consents - {data["purpose"]})
    if event_type == "CustomerErased":
        kept = {key: value for key, value in state.profile.items() if key not in PII_FIELDS}
        return replace(state, status="erased", consents=frozenset(), profile=kept,
                       erasure={key: data[key] for key in ("receipt_id", "reason", "erased_at")})
    return state


def fold(customer_id: str, envelopes: Iterable[Envelope]) -> Customer:
    state = Customer(customer_id)
    for envelope in envelopes:
        state = evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.recorded_at)
    return state


def decide_register(customer_id: str, command: dict[str, Any]) -> list[NewEvent]:
    data = {key: value for key, value in command.items() if key != "command_id"}
    data["consents"] = sorted(set(data["consents"]))
    return [NewEvent("CustomerRegistered", {"customer_id": customer_id, **data})]


def decide_update(state: Customer, changes: dict[str, Any], expected_version: int) -> list[NewEvent]:
    state.require_active()
    if state.version != expected_version:
        raise Conflict(f"customer {state.customer_id} is at version {state.version}, not {expected_version}: "
                       "reload it and apply your changes again")
    return [NewEvent("CustomerDetailsChanged", {"customer_id": state.customer_id, "changes": changes})]


def decide_set_tier(state: Customer, tier: str, reason: str) -> list[NewEvent]:
    state.require_active()
    if state.tier == tier:
        return []
    return [NewEvent("CustomerTierChanged", {"customer_id": state.customer_id, "previous_tier": state.tier,
                                             "tier": tier, "reason": reason})]


def decide_consent(state: Customer, purpose: str, give: bool) -> list[NewEvent]:
    state.require_active()
    if (purpose in state.consents) == give:
        return []  # already so: nothing to record
    event_type = "ConsentGiven" if give else "ConsentWithdrawn"
    return [NewEvent(event_type, {"customer_id": state.customer_id, "purpose": purpose})]


def decide_erase(state: Customer, reason: str, now: str) -> list[NewEvent]:
    state.require_active()
    return [NewEvent("CustomerErased", {"customer_id": state.customer_id, "receipt_id": new_id(),
                                        "reason": reason, "erased_at": now})]


def decide_pii_access(state: Customer, purpose: str, fields: list[str], method: str) -> list[NewEvent]:
    state.require_active()
    return [NewEvent("PiiAccessed", {"customer_id": state.customer_id, "purpose": purpose,
                                     "fields": fields, "method": method})]


def decide_batch_access(customer_ids: list[str], purpose: str, fields: list[str]) -> list[NewEvent]:
    """One ``PiiAccessed`` listing every customer revealed by ``reveal_contacts`` (already checked active).

    One event a batch, not one a customer: each event is signed, relayed
    and checked by every follower, and a campaign reveals whole batches.
    """
    return [NewEvent("PiiAccessed", {"customer_ids": list(customer_ids), "purpose": purpose, "fields": fields,
                                     "method": "reveal_contacts"})]
