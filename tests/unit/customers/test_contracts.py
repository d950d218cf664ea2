"""Every bad input to the customers contract is refused with the field named."""

from datetime import date, timedelta

import pytest

from contracts import customers as contract
from shared.errors import ValidationError
from shared.validation import load_call

GOOD = {"name": "李娜", "phone": "138 1234-5678", "email": "ln@example.com"}


def register(*args, **kwargs):
    return load_call(contract.Register(), args, kwargs)


def fields_of(error):
    return set(error.value.fields)


def test_defaults_and_normalised_phone():
    command = register(**GOOD)
    assert command["phone"] == "13812345678"
    assert (command["tier"], command["locale"], command["timezone"]) == ("general", "zh-CN", "Asia/Shanghai")
    assert command["consents"] == [] and command["command_id"] is None


def test_positional_arguments_follow_the_documented_order():
    command = register("李娜", "13812345678", "ln@example.com", "1990-01-31")
    assert command["birthday"] == "1990-01-31" and command["email"] == "ln@example.com"


@pytest.mark.parametrize("bad, field", [
    ({"nickname": "x"}, "nickname"),
    ({"phone": "12ab"}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({"birthday": (date.today() + timedelta(days=1)).isoformat()}, "birthday"),
    ({"birthday": "1990-02-30"}, "birthday"),
    ({"tier": "gold"}, "tier"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"consents": ["spam"]}, "consents"),
    ({"name": 42}, "name"),
    ({"name": ""}, "name"),
    ({"tags": ["x"] * 21}, "tags"),
    ({"birthday": "1990-08-31", "birthday_calendar": "lunar"}, "birthday"),
])
def test_bad_register_input_names_the_field(bad, field):
    with pytest.raises(ValidationError) as error:
        register(**{**GOOD, **bad})
    assert field in fields_of(error)


def test_lunar_birthday_that_exists_is_accepted():
    assert register(**GOOD, birthday="1990-08-15", birthday_calendar="lunar")["birthday"] == "1990-08-15"


def test_a_contact_is_required():
    with pytest.raises(ValidationError) as error:
        register(name="无联系方式")
    assert "phone" in fields_of(error)


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(ValidationError) as error:
        register(**GOOD, tags=["x" * 40] * 2000)
    assert "_payload" in fields_of(error)


def test_too_many_positional_arguments_and_duplicates_are_refused():
    with pytest.raises(ValidationError):
        load_call(contract.GetCustomer(), ("a", "b"), {})
    with pytest.raises(ValidationError) as error:
        load_call(contract.GetCustomer(), ("a",), {"customer_id": "a"})
    assert "customer_id" in fields_of(error)


def test_update_needs_a_change_and_a_strict_integer_version():
    with pytest.raises(ValidationError) as error:
        load_call(contract.Update(), (), {"customer_id": "c1", "changes": {}, "expected_version": "1"})
    assert {"changes", "expected_version"} <= fields_of(error)
    with pytest.raises(ValidationError) as error:
        load_call(contract.Update(), (), {"customer_id": "c1", "changes": {"tier": "partner"}, "expected_version": 1})
    assert "changes" in fields_of(error)


def test_find_paging_limits():
    with pytest.raises(ValidationError) as error:
        load_call(contract.Find(), (), {"page_size": 501})
    assert "page_size" in fields_of(error)


def test_an_erasure_reason_is_a_code_so_the_receipt_never_holds_free_text():
    erase = load_call(contract.Erase(), ("c1", "consent_withdrawn"), {})
    assert erase["reason"] == "consent_withdrawn"
    with pytest.raises(ValidationError) as error:
        load_call(contract.Erase(), ("c1", "张伟 called and asked"), {})
    assert "reason" in fields_of(error)
