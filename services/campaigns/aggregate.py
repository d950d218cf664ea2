"""The campaign as the command path sees it: its stream, its fold and its answers (no personal data to seal)."""

from __future__ import annotations

from typing import Any

from services.campaigns import domain
from shared.commands import AggregateKind
from shared.eventstore.store import Appended


def answer(campaign: domain.Campaign, appended: Appended | None) -> dict[str, Any]:
    status = campaign.status if appended is None else _status_after(campaign, appended)
    return {"campaign_id": campaign.campaign_id,
            "version": appended.version if appended is not None else campaign.version, "status": status}


def _status_after(campaign: domain.Campaign, appended: Appended) -> str:
    state = campaign
    for envelope in appended.envelopes:
        state = domain.evolve(state, envelope.type, envelope.data, envelope.stream_version, envelope.recorded_at)
    return state.status


CAMPAIGN = AggregateKind(
    name="campaign",
    stream_of=domain.stream_of,
    fold=domain.fold,
    answer=answer,
)
