"""The customer directory applies each customers event type, on a real SQLite store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from contracts.catalogue import EVENTS
from services.customers import domain
from services.customers.aggregate import seal
from services.customers.projection import CustomerDirectory, directory, erasure_receipts, tags
from services.customers.service import MIGRATIONS
from shared.consumer_runner import ConsumerRunner
from shared.crypto import KeyRing
from shared.eventstore.envelope import CommandContext
from shared.eventstore.store import EventStore
from shared.migrations import upgrade
from tests.support import signer

CONTEXT = CommandContext("alice", "agent")
REGISTER = {"name": "张伟", "phone": "13812345678", "email": "zw@example.com", "birthday": "1990-05-01",
            "birthday_calendar": "gregorian", "locale": "zh-CN", "timezone": "Asia/Shanghai",
            "tier": "general", "tags": ["vip"], "consents": ["callbacks"], "command_id": None}


@pytest.fixture
def world(tmp_path):
    store = EventStore.open(f"sqlite:///{tmp_path / 'customers.db'}", signer("customers"))
    upgrade(store.engine, MIGRATIONS, "alembic_version_customers")
    keys = KeyRing(store.engine, b"m" * 32)
    runner = ConsumerRunner(store.engine, CustomerDirectory(keys))
    yield store, keys, runner
    store.close()


def decide_and_apply(world, decide) -> None:
    """Decide on the customer as the log has it, append sealed, and let the directory catch up."""
    store, keys, runner = world
    customer = domain.fold("c1", store.read_stream(domain.stream_of("c1")))
    store.append(domain.stream_of("c1"), seal(keys, customer, decide(customer)), customer.version, CONTEXT)
    runner.catch_up("customers", store.iter_since(runner.position("customers")))


def row(world) -> dict:
    with world[0].engine.connect() as connection:
        return dict(connection.execute(select(directory).where(directory.c.customer_id == "c1")).mappings().one())


def tags_of(world) -> list[str]:
    with world[0].engine.connect() as connection:
        return sorted(connection.execute(select(tags.c.tag).where(tags.c.customer_id == "c1")).scalars())


def test_each_event_type_has_its_handler_and_every_handled_type_is_in_the_catalogue():
    assert CustomerDirectory.upstreams == ("customers",)
    handled = {event_type for _upstream, event_type in CustomerDirectory.handled_events()}
    assert handled == set(EVENTS["customers"]) - {"PiiAccessed"}


def test_registered_is_searchable_in_clear(world):
    decide_and_apply(world, lambda customer: domain.decide_register("c1", REGISTER))
    registered = row(world)
    assert (registered["name"], registered["name_key"], registered["phone"]) == ("张伟", "张伟", "13812345678")
    assert (registered["status"], registered["version"], json.loads(registered["consents"])) == (
        "active", 1, ["callbacks"])
    assert tags_of(world) == ["vip"]


def test_details_tier_and_consents_change_the_row(world):
    decide_and_apply(world, lambda customer: domain.decide_register("c1", REGISTER))
    decide_and_apply(world, lambda customer: domain.decide_update(customer, {"name": "Wei ZHANG", "tags": ["a", "b"]}, 1))
    decide_and_apply(world, lambda customer: domain.decide_set_tier(customer, "partner", "contract"))
    decide_and_apply(world, lambda customer: domain.decide_consent(customer, "marketing", give=True))
    decide_and_apply(world, lambda customer: domain.decide_consent(customer, "callbacks", give=False))
    changed = row(world)
    assert (changed["name"], changed["name_key"], changed["tier"], changed["version"]) == (
        "Wei ZHANG", "wei zhang", "partner", 5)
    assert json.loads(changed["consents"]) == ["marketing"] and tags_of(world) == ["a", "b"]


def test_erased_drops_the_pii_and_keeps_a_receipt(world):
    decide_and_apply(world, lambda customer: domain.decide_register("c1", REGISTER))
    decide_and_apply(world, lambda customer: domain.decide_erase(customer, "subject_request", "2026-01-01T00:00:00Z"))
    erased = row(world)
    assert erased["status"] == "erased" and all(erased[field] is None for field in ("name", "name_key", "phone"))
    assert tags_of(world) == []
    with world[0].engine.connect() as connection:
        assert connection.execute(select(erasure_receipts.c.reason)).scalar_one() == "subject_request"


def test_an_erasure_is_never_parked():
    assert CustomerDirectory.never_parked == {"CustomerErased"}
