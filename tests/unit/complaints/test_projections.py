"""The complaints service's projections apply each event type, on a real SQLite store."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from contracts.catalogue import EVENTS
from services.complaints import domain
from services.complaints.aggregate import seal
from services.complaints.known_customers import KnownCustomers, customer_status
from services.complaints.projection import ComplaintList, complaint_list
from services.complaints.service import MIGRATIONS
from shared.consumer_runner import ConsumerRunner
from shared.crypto import KeyRing
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from shared.migrations import upgrade
from tests.support import signer

CONTEXT = CommandContext("alice", "agent")
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in Shanghai
RULES = domain.Rules()
FILE = {"customer_id": "cust-1", "channel": "phone", "category": "billing", "urgency": "high",
        "summary": "双重扣费", "description": "扣了两次", "related_complaint_id": None, "command_id": None}


@pytest.fixture
def world(tmp_path):
    complaints = EventStore.open(f"sqlite:///{tmp_path / 'complaints.db'}", signer("complaints"))
    upgrade(complaints.engine, MIGRATIONS, "alembic_version_complaints")
    customers = EventStore.open(f"sqlite:///{tmp_path / 'customers.db'}", signer("customers"))
    keys = KeyRing(complaints.engine, b"m" * 32)
    runners = [ConsumerRunner(complaints.engine, consumer(keys)) for consumer in (KnownCustomers, ComplaintList)]
    yield complaints, customers, keys, runners
    complaints.close()
    customers.close()


def follow(world) -> None:
    complaints, customers, _keys, runners = world
    for runner in runners:
        for upstream, store in (("complaints", complaints), ("customers", customers)):
            if upstream in runner.consumer.upstreams:
                runner.catch_up(upstream, store.iter_since(runner.position(upstream)))


def customer_event(world, event_type: str, **data) -> None:
    world[1].append("customer-cust-1", [NewEvent(event_type, {"customer_id": "cust-1", **data})], None, CONTEXT)
    follow(world)


def decide_and_apply(world, decide) -> None:
    complaints, _customers, keys, _runners = world
    complaint = domain.fold("k1", complaints.read_stream(domain.stream_of("k1")))
    complaints.append(domain.stream_of("k1"), seal(keys, complaint, decide(complaint)), complaint.version, CONTEXT)
    follow(world)


def listed(world) -> dict:
    with world[0].engine.connect() as connection:
        return dict(connection.execute(select(complaint_list)).mappings().one())


def test_handlers_name_only_catalogued_event_types():
    for consumer in (KnownCustomers, ComplaintList):
        for upstream, event_type in consumer.handled_events():
            assert event_type in EVENTS[upstream], (consumer.name, upstream, event_type)
    assert KnownCustomers.upstreams == ("customers",)
    assert ComplaintList.upstreams == ("complaints", "customers")


def test_known_customers_follow_registration_and_erasure(world):
    assert customer_status(world[0].engine, "cust-1") is None
    customer_event(world, "CustomerRegistered")
    assert customer_status(world[0].engine, "cust-1") == "active"
    customer_event(world, "CustomerTierChanged", tier="partner")  # not taken: tracking moves all the same
    customer_event(world, "CustomerErased", erased_at="2026-03-02T02:00:00Z")
    assert customer_status(world[0].engine, "cust-1") == "erased"
    assert [runner.position("customers") for runner in world[3]] == [3, 3]


def test_the_list_follows_a_complaint_through_its_life(world):
    decide_and_apply(world, lambda complaint: domain.decide_file("k1", FILE, NOW, RULES))
    filed = listed(world)
    assert (filed["status"], filed["summary"], filed["priority"], filed["version"]) == ("open", "双重扣费", "high", 1)
    decide_and_apply(world, lambda complaint: domain.decide_assign(complaint, "bob", NOW))
    decide_and_apply(world, lambda complaint: domain.decide_respond(complaint, "looking into it", NOW))
    decide_and_apply(world, lambda complaint: domain.decide_escalate(complaint, "angry", NOW, RULES))
    decide_and_apply(world, lambda complaint: domain.decide_resolve(complaint, "refunded", NOW))
    resolved = listed(world)
    assert (resolved["status"], resolved["assignee"], resolved["escalation_level"]) == ("resolved", "bob", 1)
    assert resolved["first_replied_at"] is not None and resolved["resolved_at"] is not None
    decide_and_apply(world, lambda complaint: domain.decide_confirm(complaint, True, 5, NOW))
    closed = listed(world)
    assert (closed["status"], closed["satisfied"], closed["score"]) == ("closed", True, 5)


def test_an_erased_customer_loses_the_summaries_in_the_list(world):
    decide_and_apply(world, lambda complaint: domain.decide_file("k1", FILE, NOW, RULES))
    customer_event(world, "CustomerErased", erased_at="2026-03-02T02:00:00Z")
    erased = listed(world)
    assert (erased["summary"], erased["pii_erased"]) == (None, True)
    assert ComplaintList.never_parked == KnownCustomers.never_parked == {"CustomerErased"}
