"""The services' RPC entrypoint: deadlines, replies the broker cannot take, quick reconnects."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError

from shared.broker import ReconnectingQueueConsumer
from shared.rpc import Request, deadline_after, expired, now_ms


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


class _BrokerAway:
    def handle_result(self, message, result, exc_info):
        raise OperationalError("[Errno 104] Connection reset by peer")


def test_a_reply_the_broker_cannot_take_leaves_the_service_running():
    entrypoint = Request()
    entrypoint.container = SimpleNamespace(service_name="customers")
    entrypoint.method_name = "register"
    entrypoint.rpc_consumer = _BrokerAway()
    assert entrypoint.handle_result(message=None, worker_ctx=None, result={"customer_id": "c1"},
                                    exc_info=None) == ({"customer_id": "c1"}, None)


def test_the_consumer_retries_a_lost_broker_within_two_seconds():
    calls = []

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def ensure_connection(self, errback, max_retries, **intervals):
            calls.append(intervals)

    consumer = ReconnectingQueueConsumer()
    consumer.create_connection = Connection
    with consumer.establish_connection():
        pass
    [intervals] = calls
    assert intervals["interval_max"] <= 2.0 and intervals["interval_start"] < 1.0
