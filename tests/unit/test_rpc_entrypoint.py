"""The services' RPC entrypoint refuses requests that arrive after their caller's deadline."""

from __future__ import annotations

import pytest

from shared.rpc import deadline_after, expired, now_ms


def test_a_request_without_a_deadline_or_before_it_runs():
    assert expired(None, 100_000) is None
    assert expired(100_500, 100_000) is None
    assert expired(100_000, 100_000) is None


def test_a_request_after_its_deadline_is_refused_saying_by_how_much():
    assert expired(99_750, 100_000) == "the request arrived 0.250 s after its caller's deadline; it was not run"


@pytest.mark.parametrize("deadline", ["soon", 100.5, float("nan"), True, [1]])
def test_a_deadline_that_is_not_whole_unix_milliseconds_is_refused(deadline):
    assert "is not a whole number of Unix milliseconds" in expired(deadline, 100_000)


def test_a_deadline_is_the_callers_wait_from_now_in_milliseconds():
    before = now_ms()
    deadline = deadline_after(2.5)
    assert isinstance(deadline, int) and before + 2500 <= deadline <= now_ms() + 2500
