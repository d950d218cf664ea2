"""health() shows how far a consumer is behind each upstream, counting events not delivered yet.

customers' relay is held back (another owner holds its lease), so what it
appends is in its log but never reaches the broker: complaints can learn of
it only by asking customers for its head.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert

import shared.event_log
from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.eventstore.tables import leases
from tests.support import event_log, rpc_as, running, service_config, wait_for

HELD_BACK = 5


@pytest.fixture
def config(tmp_path, amqp_uri):
    return service_config(tmp_path, amqp_uri)  # SQLite stores in tmp_path


def test_lag_counts_upstream_events_not_delivered_yet(config, monkeypatch):
    monkeypatch.setattr(shared.event_log, "UPSTREAM_SWEEP_SECONDS", 3600.0)  # this test asks and pulls itself
    with running(CustomersService, config) as customers, running(ComplaintsService, config) as complaints:
        with rpc_as(config, "agent") as proxy:
            proxy.customers.register(name="张伟", phone="13800000001")
        follower = event_log(complaints)
        known = lambda: follower.health()["projections"]["complaints.customers"]["upstreams"]["customers"]  # noqa: E731
        wait_for(lambda: known()["applied"] == 1, what="complaints to apply the first registration")

        relay = event_log(customers).relay
        relay.lease.release()
        with event_log(customers).store.engine.begin() as connection:  # another replica now holds the relay
            connection.execute(insert(leases).values(name=relay.lease.name, owner="elsewhere",
                                                     expires_at=2 ** 62))
        with rpc_as(config, "agent") as proxy:
            for number in range(HELD_BACK):
                proxy.customers.register(name=f"客户{number}", phone=f"1390000000{number}")

        follower.probe_upstream_heads()
        behind = known()
        assert (behind["head"], behind["applied"], behind["lag_events"]) == (1 + HELD_BACK, 1, HELD_BACK)
        assert behind["lag_seconds"] > 0 and behind["since_last_applied_seconds"] >= 0
        with rpc_as(config, "admin") as proxy:
            assert proxy.complaints.health()["projections"]["complaints.customers"]["lag"] == HELD_BACK

        follower.pull_upstreams()  # what the sweep does for a consumer behind its upstream's head
        caught_up = known()
        assert (caught_up["applied"], caught_up["lag_events"], caught_up["lag_seconds"]) == (1 + HELD_BACK, 0, 0.0)


def sweep(follower) -> None:
    """One round of the upstream sweep: learn the heads, pull for the consumers deliveries are not moving."""
    earlier = dict(follower.upstream_heads)
    follower.probe_upstream_heads()
    follower.pull_upstreams(only_behind=True, earlier_heads=earlier)


def test_the_sweep_pulls_only_for_a_consumer_deliveries_do_not_move(config, monkeypatch):
    monkeypatch.setattr(shared.event_log, "UPSTREAM_SWEEP_SECONDS", 3600.0)  # this test sweeps itself
    with running(CustomersService, config) as customers, running(ComplaintsService, config) as complaints:
        follower = event_log(complaints)
        applied = lambda: follower.health()["projections"]["complaints.customers"]["positions"]["customers"]  # noqa: E731
        # The service's own sweep looks once as it starts: let it finish, so only this test's sweeps pull.
        wait_for(lambda: ("complaints.customers", "customers") in follower._swept, what="the start-up sweep")
        relay = event_log(customers).relay
        relay.lease.release()
        with event_log(customers).store.engine.begin() as connection:  # no delivery reaches complaints
            connection.execute(insert(leases).values(name=relay.lease.name, owner="elsewhere", expires_at=2 ** 62))

        def register(count: int, first: int) -> None:
            with rpc_as(config, "agent") as proxy:
                for number in range(first, first + count):
                    proxy.customers.register(name=f"客户{number}", phone=f"13900000{number:03d}")

        register(3, 0)
        sweep(follower)
        assert applied() == 3  # never looked at before: pulled
        register(2, 3)
        sweep(follower)
        assert applied() == 3  # it moved since the last sweep and reached the head seen then: left to deliveries
        sweep(follower)
        assert applied() == 5  # nothing moved for a whole sweep: pulled
