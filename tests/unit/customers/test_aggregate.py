"""The customer's sealing: what reaches the log in clear, and what the customer's copy reads back."""

from __future__ import annotations

import pytest

from services.customers import domain
from services.customers.aggregate import open_event, seal
from shared.crypto import PREFIX, KeyRing
from shared.eventstore.engine import create_store_engine

REGISTER = {"name": "张伟", "phone": "13812345678", "email": "zw@example.com", "birthday": "1990-05-01",
            "birthday_calendar": "gregorian", "locale": "zh-CN", "timezone": "Asia/Shanghai",
            "tier": "general", "tags": ["vip"], "consents": ["callbacks"], "command_id": None}
REASON = "张伟 (13812345678) signed the framework contract"


@pytest.fixture
def keys(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'customers.db'}")
    yield KeyRing(engine, b"m" * 32)
    engine.dispose()


def sealed_history(keys):
    registered = seal(keys, domain.Customer("c1"), domain.decide_register("c1", REGISTER))
    customer = domain.Customer("c1", version=1, status="active")
    changed = seal(keys, customer, domain.decide_update(customer, {"phone": "13900000000", "tags": ["a"]}, 1))
    tiered = seal(keys, customer, domain.decide_set_tier(customer, "partner", REASON))
    return [*registered, *changed, *tiered]


def test_pii_and_the_tier_reason_are_sealed_and_the_rest_is_plain(keys):
    registered, changed, tiered = sealed_history(keys)
    assert all(registered.data[field].startswith(PREFIX) for field in ("name", "phone", "email", "birthday"))
    assert registered.data["tier"] == "general" and registered.data["tags"] == ["vip"]
    assert changed.data["changes"]["phone"].startswith(PREFIX) and changed.data["changes"]["tags"] == ["a"]
    assert tiered.data["reason"].startswith(PREFIX) and tiered.data["tier"] == "partner"


def test_the_customers_copy_opens_every_sealed_field_until_the_key_is_destroyed(keys):
    events = sealed_history(keys)
    opened = [open_event(keys.opening_key("c1"), event.type, event.data) for event in events]
    assert (opened[0]["name"], opened[1]["changes"]["phone"], opened[2]["reason"]) == ("张伟", "13900000000", REASON)
    keys.destroy("c1")
    shredded = [open_event(keys.opening_key("c1"), event.type, event.data) for event in events]
    assert (shredded[0]["name"], shredded[1]["changes"]["phone"], shredded[2]["reason"]) == (None, None, None)


def test_commands_that_seal_nothing_do_not_touch_the_keys():
    customer = domain.Customer("c1", version=1, status="active")
    events = domain.decide_consent(customer, "marketing", give=True)
    assert seal(None, customer, events) == events
