"""What each reader is shown of one customer: masks, or in clear only what the purpose needs."""

from __future__ import annotations

import pytest

from services.customers import domain, views
from services.customers.aggregate import seal
from services.customers.masking import mask_birthday, mask_email, mask_name, mask_phone
from shared.crypto import KeyRing
from shared.eventstore.engine import create_store_engine

REGISTER = {"name": "张小伟", "phone": "13812345678", "email": "zw@example.com", "birthday": "1990-05-01",
            "birthday_calendar": "gregorian", "locale": "zh-CN", "timezone": "Asia/Shanghai",
            "tier": "general", "tags": ["vip"], "consents": ["care_messages"], "command_id": None}


@pytest.fixture
def registered(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'customers.db'}")
    keys = KeyRing(engine, b"m" * 32)
    [event] = seal(keys, domain.Customer("c1"), domain.decide_register("c1", REGISTER))
    customer = domain.evolve(domain.Customer("c1"), event.type, event.data, 1, "2026-01-01T00:00:00Z")
    yield keys, customer
    engine.dispose()


def test_masks_keep_enough_to_tell_records_apart_and_no_more():
    assert [mask_name("张小伟"), mask_name("张伟"), mask_name("张"), mask_name(None)] == ["张**", "张*", "*", None]
    assert (mask_phone("13812345678"), mask_email("zw@example.com"), mask_birthday("1990-05-01")) == (
        "138****5678", "z***@example.com", "1990-**-**")


def test_a_masked_view_masks_every_pii_field(registered):
    keys, customer = registered
    view = views.customer_view(keys, customer, masked=True)
    assert (view["name"], view["phone"], view["email"], view["birthday"]) == (
        "张**", "138****5678", "z***@example.com", "1990-**-**")
    assert (view["tier"], view["locale"], view["tags"]) == ("general", "zh-CN", ["vip"])


def test_a_view_in_clear_opens_every_pii_field(registered):
    keys, customer = registered
    view = views.customer_view(keys, customer, masked=False)
    assert (view["name"], view["phone"], view["birthday"]) == ("张小伟", "13812345678", "1990-05-01")


def test_a_contact_holds_what_its_purpose_needs(registered):
    keys, customer = registered
    greeting = views.contact_view(keys, customer, "care_messages")
    callback = views.contact_view(keys, customer, "callbacks")
    assert (greeting["name"], greeting["birthday"], greeting["birthday_calendar"]) == ("张小伟", "1990-05-01", "gregorian")
    assert callback["phone"] == "13812345678" and "birthday" not in callback
