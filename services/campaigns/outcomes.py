"""A run's care message events: one per batch and outcome, naming every message and customer in it.

A run of 100,000 messages used to write 100,000 signed events, each one
relayed and checked by every follower; one event per batch and outcome
(``CareMessageQueued``, ``CareMessageSent``, ``CareMessageFailed``,
``CareMessageSkipped``) says the same in a few hundred. Each carries
``messages`` (key, customer, occurrence, and attempts or a reason) and
``customer_ids``, the same customers in the same order, by which the audit
ledger finds an event concerning several customers.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from contracts.campaigns import MAX_BATCH
from services.campaigns.channels import Outcome
from shared.eventstore.envelope import NewEvent

COUNTED_AS = {"CareMessageQueued": "queued", "CareMessageSent": "sent", "CareMessageFailed": "failed"}


def queued(run_id: str, campaign_id: str, keys: Sequence[str]) -> list[NewEvent]:
    """``CareMessageQueued`` for keys about to be handed to a channel that cannot be read back."""
    return _batches("CareMessageQueued", {"run_id": run_id, "campaign_id": campaign_id},
                    [_message(key) for key in keys])


def skipped(run_id: str, campaign_id: str, skips: Sequence[tuple[str, str]]) -> list[NewEvent]:
    """``CareMessageSkipped`` for final skips, ``(customer_id, reason)``."""
    return _batches("CareMessageSkipped", {"run_id": run_id, "campaign_id": campaign_id},
                    [{"customer_id": customer_id, "reason": reason} for customer_id, reason in skips])


def delivered(run_id: str, campaign_id: str, channel: str, results: Mapping[str, Outcome]) -> list[NewEvent]:
    """``CareMessageSent`` and ``CareMessageFailed`` for the channel's outcome of each key."""
    common = {"run_id": run_id, "campaign_id": campaign_id, "channel": channel}
    sent = [{**_message(key), "attempts": outcome.attempts} for key, outcome in results.items() if outcome.sent]
    failed = [{**_message(key), "attempts": outcome.attempts, "reason": outcome.reason}
              for key, outcome in results.items() if not outcome.sent]
    return _batches("CareMessageSent", common, sent) + _batches("CareMessageFailed", common, failed)


def message_keys(data: Mapping[str, Any]) -> list[str]:
    """The keys of a queued, sent or failed event."""
    return [message["message_key"] for message in data["messages"]]


def tally(counts: dict[str, Any], event_type: str, data: Mapping[str, Any]) -> None:
    """Add an event's messages to a run's counts (``deliveries.empty_counts``)."""
    if event_type in COUNTED_AS:
        counts[COUNTED_AS[event_type]] += len(data["messages"])
    elif event_type == "CareMessageSkipped":
        for message in data["messages"]:
            counts["skipped"][message["reason"]] = counts["skipped"].get(message["reason"], 0) + 1


def _message(key: str) -> dict[str, str]:
    _campaign_id, customer_id, occurrence = key.split("|")  # domain.message_key
    return {"customer_id": customer_id, "message_key": key, "occurrence": occurrence}


def _batches(event_type: str, common: Mapping[str, Any], messages: list[dict[str, Any]]) -> list[NewEvent]:
    return [NewEvent(event_type, {**common, "customer_ids": [message["customer_id"] for message in chunk],
                                  "messages": chunk})
            for chunk in (messages[start:start + MAX_BATCH] for start in range(0, len(messages), MAX_BATCH))]
