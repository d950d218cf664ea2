"""Error descriptions for logs, dead letters and health(): the kind and the place, never the data."""

from __future__ import annotations

from shared.error_text import describe
from shared.errors import Conflict


def apply_with_a_decrypted_value():
    name = "张伟 13812345678"
    raise ValueError(f"cannot apply the name {name}")


def test_a_foreign_error_is_named_by_type_and_place_without_its_message():
    try:
        apply_with_a_decrypted_value()
    except ValueError as error:
        described = describe(error)
    assert "13812345678" not in described and "张伟" not in described
    assert described.startswith("ValueError at tests/unit/test_error_text.py:")
    assert described.endswith("in apply_with_a_decrypted_value")


def test_the_services_own_errors_keep_their_message():
    assert describe(Conflict("customer c1 was erased")) == "Conflict: customer c1 was erased"
