"""The lease that lets one replica per service run the relay and the timers.

A frozen, hand-advanced clock stands in for time, so expiry is exact.
Concurrent takeover on PostgreSQL is in tests/integration/test_relay.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.eventstore.engine import create_store_engine
from shared.eventstore.tables import leases
from shared.leases import Lease


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'leases.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return Clock()


def lease(engine, clock, owner: str, ttl: float = 10.0) -> Lease:
    return Lease(engine, "customers.relay", owner, ttl_seconds=ttl, clock=clock)


def test_a_free_lease_is_taken_and_recorded_in_milliseconds(engine, clock):
    a = lease(engine, clock, "a")
    assert not a.held
    assert a.acquire()
    assert a.held
    with engine.connect() as connection:
        row = connection.execute(select(leases)).one()
    assert (row.name, row.owner, row.expires_at) == ("customers.relay", "a", 1_000_010_000)


def test_a_held_lease_is_refused_to_others_until_it_expires(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.acquire()
    assert not b.acquire() and not b.held
    clock.now += 10.0  # expires_at == now: not yet expired
    assert not b.acquire()
    clock.now += 0.001
    assert not a.held
    assert b.acquire() and b.held


def test_the_holder_renews_and_the_renewal_pushes_expiry_out(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.acquire()
    clock.now += 9.0
    assert a.acquire()  # renewed: now valid until +19 s from the start
    clock.now += 9.0
    assert a.held
    assert not b.acquire()


def test_after_expiry_the_old_holder_must_not_believe_it_still_holds(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.acquire()
    clock.now += 11.0
    assert b.acquire()
    assert not a.held
    assert not a.acquire()  # b holds it now


def test_release_frees_the_lease_at_once(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.acquire()
    a.release()
    assert not a.held
    assert b.acquire()


def test_release_by_a_non_holder_leaves_the_holder_alone(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.acquire()
    b.release()
    assert not b.acquire()
    assert a.held and a.acquire()


def test_leases_with_different_names_are_independent(engine, clock):
    relay = Lease(engine, "customers.relay", "a", clock=clock)
    timer = Lease(engine, "customers.timer", "b", clock=clock)
    assert relay.acquire() and timer.acquire()


def expiry_of(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(leases.c.expires_at)).scalar_one()


def test_a_renewal_when_due_writes_only_once_the_last_one_is_old_enough(engine, clock):
    a, b = lease(engine, clock, "a"), lease(engine, clock, "b")
    assert a.renew_when_due(renew_seconds=2.0)  # not held yet: taken
    clock.now += 1.5
    assert a.renew_when_due(renew_seconds=2.0)
    assert expiry_of(engine) == 1_000_010_000  # fresh enough: no write
    clock.now += 0.6
    assert a.renew_when_due(renew_seconds=2.0)
    assert expiry_of(engine) == 1_000_012_100  # 2.1 s after the last renewal: renewed
    assert not b.renew_when_due(renew_seconds=2.0)  # another owner still has to ask the database
