"""A run's care message events: one per batch and outcome, checked by their contract."""

import pytest
from marshmallow import ValidationError

from contracts.campaigns import EVENT_SCHEMAS, MAX_BATCH
from services.campaigns import deliveries, outcomes
from services.campaigns.channels import Outcome
from shared.canonical import canonical_json
from shared.validation import MAX_PAYLOAD_BYTES

RUN, CAMPAIGN, OCCURRENCE = "r1", "c1", "birthday:2027-02-25"


def key(customer_id: str) -> str:
    return f"{CAMPAIGN}|{customer_id}|{OCCURRENCE}"


def checked(event):
    return EVENT_SCHEMAS[event.type]().load(event.data)


def test_a_delivered_batch_is_one_sent_and_one_failed_event_listing_exactly_its_messages():
    results = {key("a"): Outcome(True, 1), key("b"): Outcome(False, 3, "ConnectionRefusedError: refused"),
               key("c"): Outcome(True, 2)}
    sent, failed = outcomes.delivered(RUN, CAMPAIGN, "webhook", results)
    assert (sent.type, failed.type) == ("CareMessageSent", "CareMessageFailed")
    assert checked(sent) == {"run_id": RUN, "campaign_id": CAMPAIGN, "channel": "webhook", "customer_ids": ["a", "c"],
                             "messages": [{"customer_id": "a", "message_key": key("a"), "occurrence": OCCURRENCE,
                                           "attempts": 1},
                                          {"customer_id": "c", "message_key": key("c"), "occurrence": OCCURRENCE,
                                           "attempts": 2}]}
    assert checked(failed)["messages"] == [{"customer_id": "b", "message_key": key("b"), "occurrence": OCCURRENCE,
                                            "attempts": 3, "reason": "ConnectionRefusedError: refused"}]
    assert checked(failed)["customer_ids"] == ["b"]


def test_nothing_to_record_is_no_event_and_more_than_a_batch_is_split():
    assert outcomes.queued(RUN, CAMPAIGN, []) == [] and outcomes.skipped(RUN, CAMPAIGN, []) == []
    events = outcomes.skipped(RUN, CAMPAIGN, [(f"c{n}", "erased") for n in range(MAX_BATCH + 1)])
    assert [len(checked(event)["messages"]) for event in events] == [MAX_BATCH, 1]


def test_tally_counts_every_message_of_an_event():
    counts = deliveries.empty_counts()
    for event in [*outcomes.queued(RUN, CAMPAIGN, [key("a"), key("b")]),
                  *outcomes.delivered(RUN, CAMPAIGN, "file", {key("a"): Outcome(True, 1),
                                                              key("b"): Outcome(False, 1, "disk full")}),
                  *outcomes.skipped(RUN, CAMPAIGN, [("c", "no_consent"), ("d", "erased"), ("e", "no_consent")])]:
        outcomes.tally(counts, event.type, event.data)
    assert counts == {"examined": 0, "queued": 2, "sent": 1, "failed": 1,
                      "skipped": {"no_consent": 2, "erased": 1}}


def sent_data(**changes):
    messages = [{"customer_id": "a", "message_key": key("a"), "occurrence": OCCURRENCE, "attempts": 1}]
    return {"run_id": RUN, "campaign_id": CAMPAIGN, "channel": "file", "customer_ids": ["a"], "messages": messages,
            **changes}


def errors(event_type, data):
    with pytest.raises(ValidationError) as refused:
        EVENT_SCHEMAS[event_type]().load(data)
    return refused.value.messages


def test_the_contracts_refuse_malformed_batches_naming_the_field():
    assert "messages" in errors("CareMessageSent", sent_data(messages=[], customer_ids=[]))
    assert "customer_ids" in errors("CareMessageSent", sent_data(customer_ids=["b"]))
    assert "customer_ids" in errors("CareMessageSent", sent_data(customer_ids=["a", "a"]))
    too_many = [{"customer_id": f"c{n}", "message_key": key(f"c{n}"), "occurrence": OCCURRENCE, "attempts": 1}
                for n in range(MAX_BATCH + 1)]
    refused = errors("CareMessageSent", sent_data(messages=too_many,
                                                  customer_ids=[m["customer_id"] for m in too_many]))
    assert "messages" in refused and "customer_ids" in refused
    assert errors("CareMessageSent", sent_data(messages=[{"customer_id": "a", "message_key": key("a"),
                                                          "occurrence": OCCURRENCE, "attempts": 0}])) \
        == {"messages": {0: {"attempts": ["Must be greater than or equal to 1."]}}}
    assert "reason" in errors("CareMessageFailed", sent_data())["messages"][0]
    assert errors("CareMessageSkipped", {"run_id": RUN, "campaign_id": CAMPAIGN, "customer_ids": ["a"],
                                         "messages": [{"customer_id": "a", "reason": "already_sent"}]}) \
        == {"messages": {0: {"reason": ["Must be one of: no_consent, erased, no_contact, frequency_cap."]}}}
    assert "run_id" in errors("CareMessageQueued", {"campaign_id": CAMPAIGN, "customer_ids": ["a"], "messages": [
        {"customer_id": "a", "message_key": key("a"), "occurrence": OCCURRENCE}]})


def test_an_event_stays_under_the_payload_limit_consumers_check_even_with_long_reasons():
    reason = "OSError: " + "磁盘已满，" * 58  # a failure reason near its 300 characters
    results = {key(f"{n:032x}"): Outcome(False, 3, reason) for n in range(MAX_BATCH)}
    events = outcomes.delivered(RUN, CAMPAIGN, "file", results)
    assert len(events) > 1 and [m["message_key"] for e in events for m in e.data["messages"]] == list(results)
    assert all(len(canonical_json(event.data).encode()) <= outcomes.EVENT_BUDGET_BYTES < MAX_PAYLOAD_BYTES
               for event in events)


def test_reasons_that_json_escapes_are_sized_as_written():
    reason = 'ValueError: "\\\n\t\x01' * 20  # each of these is written as two to six characters
    results = {key(f"{n:032x}"): Outcome(False, 3, reason) for n in range(MAX_BATCH)}
    events = outcomes.delivered(RUN, CAMPAIGN, "webhook", results)
    assert len(events) > 1
    assert all(len(canonical_json(event.data).encode()) <= outcomes.EVENT_BUDGET_BYTES for event in events)
