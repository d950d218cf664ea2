"""The upstream client over the real broker: calls in flight side by side, a proxy reused after an error."""

from __future__ import annotations

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.rpc import rpc

from shared.upstream_client import UpstreamClient
from tests.support import running, service_config

MEETING_TIMEOUT_SECONDS = 10.0


class Rendezvous:
    """Answers ``meet`` once ``expected`` callers are inside it at the same time: only calls in flight together pass."""

    name = "rendezvous"
    arrived = 0
    everyone_in = eventlet.event.Event()

    @rpc
    def meet(self, expected: int) -> int:
        Rendezvous.arrived += 1
        if Rendezvous.arrived == expected:
            Rendezvous.everyone_in.send(True)
        return Rendezvous.arrived if Rendezvous.everyone_in.wait(MEETING_TIMEOUT_SECONDS) else 0

    @rpc
    def refuse(self) -> None:
        raise ValueError("refused on purpose")


@pytest.fixture
def rendezvous(tmp_path, amqp_uri):
    config = service_config(tmp_path, amqp_uri)
    Rendezvous.arrived, Rendezvous.everyone_in = 0, eventlet.event.Event()
    with running(Rendezvous, config):
        client = UpstreamClient(amqp_uri, None, timeout=MEETING_TIMEOUT_SECONDS + 5, connections=3)
        try:
            yield client
        finally:
            client.close()


def test_a_client_with_three_connections_has_three_calls_in_flight_at_once(rendezvous):
    calls = [eventlet.spawn(rendezvous.call, "rendezvous", "meet", 3) for _ in range(3)]
    assert [call.wait() for call in calls] == [3, 3, 3]  # a serialised client would leave the first one alone


def test_an_error_answered_leaves_its_proxy_in_use(rendezvous):
    with pytest.raises(RemoteError, match="refused on purpose"):
        rendezvous.call("rendezvous", "refuse")
    calls = [eventlet.spawn(rendezvous.call, "rendezvous", "meet", 2) for _ in range(2)]
    assert [call.wait() for call in calls] == [2, 2]
    assert len(rendezvous._idle) == 2  # the refused call's proxy served one of these, and a second one opened
