"""The leased timer across replicas: two containers of one service on one database, SQLite and PostgreSQL.

Each run of the timed method records which replica ran it. Only the lease
holder runs; stopping it releases the lease at once, and killing it lets the
lease lapse within two seconds, so the other replica takes over.
"""

from __future__ import annotations

import contextlib

import pytest
from nameko.testing.utils import get_extension
from sqlalchemy import select

from shared.event_log import EventLog
from shared.eventstore.tables import leases
from shared.leases import RENEW_SECONDS, TTL_SECONDS
from shared.timers import LeasedTimer, leased_timer
from tests.support import running, service_config, wait_for

RUNS: list[int] = []  # the EventLog provider id of the replica that ran, per run


class Ticker:
    name = "ticker"

    log = EventLog()

    @leased_timer("ticker.tick", interval=3600, config_key=("TICKER", "tick_seconds"))
    def tick(self):
        RUNS.append(id(self.log.provider))


@pytest.fixture
def config(tmp_path, amqp_uri, database_url, monkeypatch):
    RUNS.clear()
    monkeypatch.setenv("CRM_EXTRA_SERVICES", f"ticker={__name__}:Ticker")  # so its database URL is read
    return {**service_config(tmp_path, amqp_uri, ticker=database_url), "TICKER": {"tick_seconds": 0.05}}


def test_each_replica_uses_the_database_it_was_given(config, database_url):
    with running(Ticker, config) as replica:
        assert get_extension(replica, EventLog).store.engine.dialect.name == database_url.split(":")[0]


def replica_id(container) -> int:
    return next(id(dependency) for dependency in container.dependencies if isinstance(dependency, EventLog))


def lease_owners(container) -> list[str]:
    engine = next(d for d in container.dependencies if isinstance(d, EventLog)).store.engine
    with engine.connect() as connection:
        return list(connection.execute(select(leases.c.owner).where(leases.c.name == "ticker.tick")).scalars())


def test_of_two_replicas_only_the_lease_holder_runs_each_tick(config):
    with running(Ticker, config) as first, running(Ticker, config) as second:
        replicas = {replica_id(first), replica_id(second)}
        wait_for(lambda: len(RUNS) >= 40, what="40 ticks")  # at 0.05 s, both replicas ticked many times
        holder = first if replica_id(first) == RUNS[0] else second
        timer = get_extension(holder, LeasedTimer)
        assert set(RUNS) == {RUNS[0]} and RUNS[0] in replicas
        assert lease_owners(holder) == [timer.keeper.lease.owner]
        assert timer.interval == 0.05 and timer.keeper.lease.ttl_ms == TTL_SECONDS * 1000


@contextlib.contextmanager
def holder_and_other(config):
    """Two replicas running, once one has ticked: ``(the lease holder, the other)``."""
    with contextlib.ExitStack() as replicas:
        first = replicas.enter_context(running(Ticker, config))
        second = replicas.enter_context(running(Ticker, config))
        wait_for(lambda: RUNS, what="a first tick")
        yield (first, second) if RUNS[0] == replica_id(first) else (second, first)


def owner_of(container) -> str:
    return get_extension(container, LeasedTimer).keeper.lease.owner


def test_stopping_the_holder_hands_the_lease_over_at_once(config):
    with holder_and_other(config) as (holder, other):
        holder_owner = owner_of(holder)
        holder.stop()
        ran_before_stop = len(RUNS)
        assert holder_owner not in lease_owners(other)  # released, not left to lapse
        wait_for(lambda: replica_id(other) in RUNS[ran_before_stop:], what="the other replica to take over")
        assert set(RUNS[ran_before_stop:]) == {replica_id(other)}
        assert lease_owners(other) == [owner_of(other)]


def test_a_killed_holder_is_replaced_once_its_short_lease_lapses(config):
    with holder_and_other(config) as (holder, other):
        holder.kill()  # as kill -9 would: no stop, so the timer's lease is not released
        ran_before_kill = len(RUNS)
        wait_for(lambda: replica_id(other) in RUNS[ran_before_kill:], timeout=2 * (TTL_SECONDS + RENEW_SECONDS),
                 what="the other replica to take over after the lease lapsed")
        assert lease_owners(other) == [owner_of(other)]
