"""Customers RPC methods as units (nameko's worker_factory): validate, check the role, delegate."""

from __future__ import annotations

import pytest
from nameko.testing.services import worker_factory

from services.customers import domain
from services.customers.aggregate import erasure_receipt
from services.customers.service import CustomersService
from shared.auth import Principal
from shared.errors import Forbidden, ValidationError

ACTIVE = domain.Customer("c1", version=3, status="active", tier="general")


def as_role(role: str):
    service = worker_factory(CustomersService)
    service.auth.return_value = Principal("sue", role)
    return service


def test_set_tier_decides_on_the_loaded_customer_through_the_command_path():
    service = as_role("supervisor")
    service.customers.change.return_value = {"customer_id": "c1", "version": 4}

    assert service.set_tier("c1", "partner", "framework contract", command_id="t-1") == {
        "customer_id": "c1", "version": 4}

    [(customer_id, command, decide), _kwargs] = service.customers.change.call_args
    assert customer_id == "c1" and command["command_id"] == "t-1" and command["tier"] == "partner"
    [event] = decide(ACTIVE)
    assert (event.type, event.data["previous_tier"], event.data["tier"]) == ("CustomerTierChanged", "general",
                                                                              "partner")


def test_set_tier_refuses_agents_and_bad_tiers_before_touching_the_log():
    with pytest.raises(Forbidden):
        as_role("agent").set_tier("c1", "partner", "why not")
    service = as_role("supervisor")
    with pytest.raises(ValidationError) as refused:
        service.set_tier("c1", "platinum", "why not")
    assert "tier" in refused.value.fields
    service.customers.change.assert_not_called()


def test_erase_answers_the_receipt_with_whether_the_key_is_gone_yet():
    service = as_role("admin")
    receipt = {"receipt_id": "r1", "customer_id": "c1"}
    service.customers.change.return_value = {"customer_id": "c1", "version": 4, "receipt": receipt}
    service.log.keys.is_destroyed.return_value = True

    erased = service.erase("c1", "subject_request")

    assert erased["receipt"] == {**receipt, "key_destroyed": True}
    service.log.provider.catch_up.assert_called_once_with()  # the erasure reaction runs before the answer
    assert service.customers.change.call_args.args[3] is erasure_receipt
