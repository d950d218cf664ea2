"""Decide/evolve of the customer aggregate, without broker or database."""

import pytest

from services.customers import domain
from services.customers.masking import mask_email, mask_phone
from shared.errors import Conflict, NotFound
from shared.eventstore.envelope import Envelope

REGISTER = {"name": "张伟", "phone": "13812345678", "email": "zw@example.com", "birthday": "1990-05-01",
            "birthday_calendar": "gregorian", "locale": "zh-CN", "timezone": "Asia/Shanghai",
            "tier": "general", "tags": ["vip"], "consents": ["callbacks", "care_messages", "callbacks"],
            "command_id": None}


def envelope(event, version):
    return Envelope(event_id=f"e{version}", type=event.type, schema_version=1, service="customers",
                    stream_id="customer-c1", stream_version=version, position=version,
                    occurred_at="2026-01-01T00:00:00Z", recorded_at=f"2026-01-0{version}T00:00:00Z",
                    actor={"id": "alice", "role": "agent"}, correlation_id="c", causation_id=None,
                    data=event.data, prev_hash="0" * 64, hash="0" * 64)


def history(*decided_lists):
    events = [event for decided in decided_lists for event in decided]
    return domain.fold("c1", [envelope(event, index) for index, event in enumerate(events, start=1)])


def registered():
    return history(domain.decide_register("c1", REGISTER))


def test_register_records_profile_without_command_id_and_dedupes_consents():
    [event] = domain.decide_register("c1", REGISTER)
    assert event.type == "CustomerRegistered"
    assert "command_id" not in event.data
    assert event.data["consents"] == ["callbacks", "care_messages"]
    state = registered()
    assert (state.status, state.version, state.tier) == ("active", 1, "general")
    assert state.consents == {"callbacks", "care_messages"}
    assert state.profile["name"] == "张伟"


def test_update_with_stale_version_is_a_conflict_naming_both_versions():
    with pytest.raises(Conflict, match="version 1, not 3"):
        domain.decide_update(registered(), {"name": "王芳"}, expected_version=3)


def test_update_changes_only_the_given_fields():
    state = registered()
    changed = history(domain.decide_register("c1", REGISTER), domain.decide_update(state, {"email": "n@x.cn"}, 1))
    assert changed.profile["email"] == "n@x.cn" and changed.profile["name"] == "张伟"
    assert changed.version == 2


def test_commands_on_an_unknown_customer_are_not_found():
    with pytest.raises(NotFound):
        domain.decide_set_tier(domain.Customer("nobody"), "partner", "big order")


def test_same_tier_or_same_consent_decides_nothing():
    state = registered()
    assert domain.decide_set_tier(state, "general", "no change") == []
    assert domain.decide_consent(state, "callbacks", give=True) == []
    assert domain.decide_consent(state, "marketing", give=False) == []


def test_tier_change_names_previous_tier():
    [event] = domain.decide_set_tier(registered(), "partner", "framework contract")
    assert event.data == {"customer_id": "c1", "previous_tier": "general", "tier": "partner",
                          "reason": "framework contract"}


def test_withdrawn_consent_is_gone_from_state():
    state = registered()
    after = history(domain.decide_register("c1", REGISTER), domain.decide_consent(state, "callbacks", give=False))
    assert after.consents == {"care_messages"}


def test_erase_drops_pii_and_consents_and_blocks_further_commands():
    state = registered()
    erased = history(domain.decide_register("c1", REGISTER), domain.decide_erase(state, "subject_request", "T"))
    assert erased.status == "erased"
    assert not set(domain.PII_FIELDS) & set(erased.profile)
    assert erased.consents == frozenset()
    assert erased.erasure["reason"] == "subject_request"
    with pytest.raises(Conflict, match="erased"):
        domain.decide_update(erased, {"name": "x"}, erased.version)
    with pytest.raises(Conflict):
        domain.decide_erase(erased, "subject_request", "T")


@pytest.mark.parametrize("phone, masked", [("13812345678", "138****5678"), ("+8613812345678", "+86*******5678"),
                                           ("123456", "******"), (None, None)])
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


def test_mask_email_keeps_first_letter_and_domain():
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_email(None) is None


def test_a_batch_reveal_is_one_event_listing_every_customer_revealed():
    decided = domain.decide_batch_access(["c1", "c2", "c3"], "marketing", ["name", "phone", "email"])
    assert [event.type for event in decided] == ["PiiAccessed"]
    assert decided[0].data == {"customer_ids": ["c1", "c2", "c3"], "purpose": "marketing",
                               "fields": ["name", "phone", "email"], "method": "reveal_contacts"}
