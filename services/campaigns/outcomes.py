"""A run's care message events: a batch's per outcome, naming every message and customer in them.

An event per message would make a run of 100,000 messages 100,000 signed
events, each relayed and checked by every follower; listing a batch's
messages per outcome (``CareMessageQueued``, ``CareMessageSent``,
``CareMessageFailed``, ``CareMessageSkipped``, split only where an event
would grow too large) says the same in a few hundred. Each carries
``messages`` (key, customer, occurrence, and attempts or a reason) and
``customer_ids``, the same customers in the same order, by which the audit
ledger finds an event concerning several customers.

An event holds up to ``MAX_BATCH`` messages and stays under
``EVENT_BUDGET_BYTES``: a consumer refuses a delivered envelope over the
payload limit (``shared.validation``), and failure reasons can be long.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any, Iterator, Mapping, Sequence

from contracts.campaigns import MAX_BATCH
from services.campaigns.channels import Outcome
from shared.eventstore.envelope import NewEvent
from shared.validation import MAX_PAYLOAD_BYTES

EVENT_BUDGET_BYTES = MAX_PAYLOAD_BYTES * 3 // 4  # the rest is the envelope's: ids, hashes, signature
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
    sent = [_message(key, attempts=outcome.attempts) for key, outcome in results.items() if outcome.sent]
    failed = [_message(key, attempts=outcome.attempts, reason=outcome.reason)
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


def _message(key: str, **more: Any) -> dict[str, Any]:
    _campaign_id, customer_id, occurrence = key.split("|")  # domain.message_key
    return {"customer_id": customer_id, "message_key": key, "occurrence": occurrence, **more}


def _batches(event_type: str, common: Mapping[str, Any], messages: list[dict[str, Any]]) -> list[NewEvent]:
    return [NewEvent(event_type, {**common, "customer_ids": [message["customer_id"] for message in chunk],
                                  "messages": chunk})
            for chunk in _chunks(messages)]


def _chunks(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive runs of messages, each at most ``MAX_BATCH`` long and ``EVENT_BUDGET_BYTES`` large."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        cost = _encoded_size(message) + len(message["customer_id"]) + 4  # and its id in ``customer_ids``
        if chunk and (len(chunk) == MAX_BATCH or size + cost > EVENT_BUDGET_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += cost
    if chunk:
        yield chunk


def _encoded_size(message: Mapping[str, str | int]) -> int:
    """The bytes of ``message`` in JSON with a separator after it, without building an encoder per message."""
    return sum(len(key) + 6 + len((encode_basestring(value) if isinstance(value, str) else str(value)).encode())
               for key, value in message.items())
