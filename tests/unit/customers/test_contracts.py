"""Every bad input to the customers contract is refused with the field named."""

from datetime import date, timedelta

import pytest

from contracts import customers as contract
from shared.errors import ValidationError
from shared.validation import load, load_call

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


@pytest.mark.parametrize("bad, field", [
    ({"name": "ß" * 60}, "name"),                           # 120 characters once case-folded, as name_key holds it
    ({"name": "张\x00伟"}, "name"),
    ({"name": "张伟\n"}, "name"),
    ({"name": "\u202e伟张"}, "name"),                          # a right-to-left override
    ({"name": "张\ud800伟"}, "name"),                          # a lone surrogate: no UTF-8 for it
    ({"tags": ["vip", "a\x00b"]}, "tags"),
    ({"email": '"\x07"@example.com'}, "email"),             # a quoted mailbox may hold controls; we refuse them
    ({"locale": "zh-CN\n"}, "locale"),
    ({"command_id": "retry\x00"}, "command_id"),
])
def test_text_a_column_cannot_hold_is_refused_naming_the_field(bad, field):
    with pytest.raises(ValidationError) as error:
        register(**{**GOOD, **bad})
    assert field in fields_of(error)


def test_a_name_that_fits_once_case_folded_is_accepted():
    assert register(**{**GOOD, "name": "ß" * 50})["name"] == "ß" * 50


def test_free_texts_may_span_lines_but_hold_no_controls():
    accepted = load_call(contract.SetTier(), ("c1", "partner", "signed\n\tframework contract"), {})
    assert accepted["reason"] == "signed\n\tframework contract"
    with pytest.raises(ValidationError) as error:
        load_call(contract.SetTier(), ("c1", "partner", "signed\x00"), {})
    assert "reason" in fields_of(error)


@pytest.mark.parametrize("bad", [
    {"name": "张伟\x00", "phone": "13812345678"},
    {"name": "张伟", "timezone": "张伟 13812345678"},
    {"name": "张伟", "birthday": "1990-02-30", "birthday_calendar": "lunar", "phone": "13812345678"},
    {"name": "张伟", "phone": "13812345678", "张伟 13812345678": "x"},
])
def test_messages_never_repeat_what_they_refuse(bad):
    with pytest.raises(ValidationError) as error:
        register(**bad)
    assert "13812345678" not in str(error.value) and "张伟" not in str(error.value) and "1990" not in str(error.value)


def test_an_unknown_key_that_is_no_field_name_is_reported_without_repeating_it():
    with pytest.raises(ValidationError) as error:
        register(**GOOD, **{"张伟 13812345678": "x", "nickname": "y"})
    assert fields_of(error) == {"_unknown", "nickname"}


def test_an_id_with_a_line_break_is_refused():
    with pytest.raises(ValidationError) as error:
        load_call(contract.GetCustomer(), ("c1\n",), {})
    assert "customer_id" in fields_of(error)


@pytest.mark.parametrize("paging", [{"page_size": 201}, {"page": 1001}, {"page": 0}])
def test_paging_is_capped(paging):
    with pytest.raises(ValidationError) as error:
        load_call(contract.Find(), (), paging)
    assert set(paging) <= fields_of(error)


BATCH_READ = {"purpose": "marketing", "fields": ["name", "phone", "email"], "method": "reveal_contacts"}


def pii_read(**data):
    return load(contract.EVENT_SCHEMAS["PiiAccessed"](), {**BATCH_READ, **data})


def test_a_read_names_one_customer_or_a_batch_of_them():
    assert pii_read(customer_id="c1")["customer_id"] == "c1"
    ids = [f"c{number}" for number in range(contract.MAX_REVEAL_BATCH)]
    assert pii_read(customer_ids=ids)["customer_ids"] == ids


@pytest.mark.parametrize("bad, problem", [
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": "c1"}, "customer_ids"),
    ({"customer_ids": [f"c{number}" for number in range(contract.MAX_REVEAL_BATCH + 1)]}, "customer_ids"),
    ({"customer_ids": ["c1", 7]}, ("customer_ids", 1)),
    ({"customer_ids": ["c1", "c 2"]}, ("customer_ids", 1)),
    ({}, "customer_ids"),
    ({"customer_id": "c1", "customer_ids": ["c1"]}, "customer_ids"),
], ids=["empty", "not-a-list", "over-the-batch", "not-a-string", "not-an-id", "no-customer", "both"])
def test_a_bad_batch_read_is_refused_naming_the_field(bad, problem):
    with pytest.raises(ValidationError) as error:
        pii_read(**bad)
    field, *index = problem if isinstance(problem, tuple) else (problem,)
    assert set(error.value.fields) == {field}
    if index:
        assert set(error.value.fields[field]) == set(index)
