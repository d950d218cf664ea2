"""The campaign aggregate and the rules of a care message: pure functions, no I/O.

A campaign is created, then paused, resumed and finally archived; its
events live in ``campaign-<id>``. A run of a campaign on a day lives in
``campaign-run-<run_id>``: ``CampaignRunStarted``, the messages' events in
batches, ``CampaignRunCompleted``. ``skip_reason`` is the one place that
says why a customer gets no message.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any, Iterable, Mapping, NamedTuple
from zoneinfo import ZoneInfo

from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope, NewEvent


def stream_of(campaign_id: str) -> str:
    return f"campaign-{campaign_id}"


def run_stream_of(run_id: str) -> str:
    return f"campaign-run-{run_id}"


def message_key(campaign_id: str, customer_id: str, occurrence: str) -> str:
    """The one message a customer may get from a campaign for an occurrence (year included)."""
    return f"{campaign_id}|{customer_id}|{occurrence}"


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    version: int = 0
    status: str = "new"  # new, active, paused, archived
    definition: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    def require_exists(self) -> None:
        if self.status == "new":
            raise NotFound(f"no campaign {self.campaign_id}")

    def require_sendable(self) -> None:
        self.require_exists()
        if self.status != "active":
            raise Conflict(f"campaign {self.campaign_id} is {self.status}: "
                           + ("resume it first" if self.status == "paused" else "an archived campaign sends nothing"))


def evolve(state: Campaign, event_type: str, data: dict[str, Any], version: int, at: str) -> Campaign:
    state = replace(state, version=version, updated_at=at)
    if event_type == "CampaignCreated":
        return replace(state, status="active", created_at=at,
                       definition={key: value for key, value in data.items() if key != "campaign_id"})
    return replace(state, status={"CampaignPaused": "paused", "CampaignResumed": "active",
                                  "CampaignArchived": "archived"}.get(event_type, state.status))


def fold(campaign_id: str, envelopes: Iterable[Envelope]) -> Campaign:
    state = Campaign(campaign_id)
    for envelope in envelopes:
        state = evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.recorded_at)
    return state


def decide_create(campaign_id: str, command: Mapping[str, Any]) -> list[NewEvent]:
    return [NewEvent("CampaignCreated", {"campaign_id": campaign_id,
                                         **{key: value for key, value in command.items() if key != "command_id"}})]


def decide_pause(state: Campaign) -> list[NewEvent]:
    state.require_exists()
    if state.status == "archived":
        raise Conflict(f"campaign {state.campaign_id} is archived; it cannot be paused")
    return [] if state.status == "paused" else [NewEvent("CampaignPaused", {"campaign_id": state.campaign_id})]


def decide_resume(state: Campaign) -> list[NewEvent]:
    state.require_exists()
    if state.status == "archived":
        raise Conflict(f"campaign {state.campaign_id} is archived; it cannot be resumed")
    return [] if state.status == "active" else [NewEvent("CampaignResumed", {"campaign_id": state.campaign_id})]


def decide_archive(state: Campaign) -> list[NewEvent]:
    state.require_exists()
    return [] if state.status == "archived" else [NewEvent("CampaignArchived", {"campaign_id": state.campaign_id})]


def run_started(run_id: str, command: Mapping[str, Any]) -> NewEvent:
    return NewEvent("CampaignRunStarted", {"run_id": run_id, "campaign_id": command["campaign_id"],
                                           "on_date": command["on_date"]})


# -- who gets a message ----------------------------------------------------------------

class Recipient(NamedTuple):
    """What the campaigns service knows of a customer from its own projection (no personal data).

    A named tuple: a run makes one per candidate, and a tuple is made in a third of a frozen dataclass's time.
    """

    customer_id: str
    status: str
    tier: str
    locale: str
    timezone: str
    care_consent: bool
    tags: tuple[str, ...] = ()


def in_segment(segment: Mapping[str, list[str]], recipient: Recipient) -> bool:
    """Empty lists match everyone; tags match if the customer has any of them."""
    return ((not segment["tiers"] or recipient.tier in segment["tiers"])
            and (not segment["locales"] or recipient.locale in segment["locales"])
            and (not segment["tags"] or bool(set(segment["tags"]) & set(recipient.tags))))


def within_window(window: Mapping[str, str], zone: str, on: date, now: datetime) -> bool:
    """Whether ``now`` is on day ``on`` and inside the send window, on the customer's own clock."""
    local = now.astimezone(ZoneInfo(zone))
    if local.date() != on:
        return False
    start, end = time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
    moment = local.time().replace(tzinfo=None)
    return start <= moment and (end == time(0) or moment < end)


def consent_reason(recipient: Recipient) -> str | None:
    """``erased`` or ``no_consent`` for a customer no care message may reach, from the projection."""
    if recipient.status != "active":
        return "erased"
    if not recipient.care_consent:
        return "no_consent"
    return None
