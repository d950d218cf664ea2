"""Under eventlet, a PostgreSQL query must not stall the other greenthreads.

nameko runs every worker of a service as a greenthread in one OS thread; a
driver that blocks in C while it waits for the server would freeze them all
(docs/decisions.md). psycopg2 cooperates once a wait
callback is installed: ``create_store_engine`` installs psycogreen's
(``eventlet.monkey_patch()`` installs an equivalent one). A control test
removes it and shows the measurement would notice. Timing is the feature
here, so the assertions are about time, with wide margins for a loaded
machine.
"""

from __future__ import annotations

import time

import eventlet
import psycopg2.extensions
import pytest
from eventlet import patcher
from sqlalchemy import text

from shared.eventstore.engine import create_store_engine
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from tests.support import signer, wait_for


@pytest.fixture
def engine(postgres_url):
    assert patcher.is_monkey_patched("socket"), "the root conftest monkey-patches eventlet"
    engine = create_store_engine(postgres_url)
    yield engine
    engine.dispose()


def sleep_in_database(engine, seconds: float) -> float:
    """Run ``pg_sleep``; return when it started (monotonic clock)."""
    with engine.connect() as connection:
        started = time.monotonic()
        connection.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})
    return started


def ticks_during_query(engine, seconds: float) -> list[float]:
    """Times at which another greenthread ran (1 ms sleeps) while the query waited."""
    ticks: list[float] = []
    sleep_in_database(engine, 0)  # connect outside the measurement
    query = eventlet.spawn(sleep_in_database, engine, seconds)

    def tick() -> None:
        while not query.dead:
            ticks.append(time.monotonic())
            eventlet.sleep(0.001)

    ticker = eventlet.spawn(tick)
    started = query.wait()
    finished = time.monotonic()
    ticker.wait()
    assert finished - started >= seconds
    return [at for at in ticks if started <= at <= finished]


def test_other_greenthreads_run_while_a_query_waits(engine):
    during = ticks_during_query(engine, 1.0)
    # A blocking driver allows no tick at all while the query runs; ~1,000 fit in 1 s.
    assert len(during) >= 100, f"only {len(during)} ticks during a 1 s query"
    longest_gap = max(later - earlier for earlier, later in zip(during, during[1:]))
    assert longest_gap < 0.25, f"the other greenthread stalled for {longest_gap:.3f} s"


def test_the_measurement_notices_a_blocking_driver(engine):
    """Control: with psycopg2's wait callback removed, the same query stalls the ticker."""
    callback = psycopg2.extensions.get_wait_callback()
    assert callback is not None, "psycopg2 is not cooperative"
    psycopg2.extensions.set_wait_callback(None)
    try:
        engine.dispose()  # connections made from now on block
        during = ticks_during_query(engine, 0.5)
    finally:
        psycopg2.extensions.set_wait_callback(callback)
        engine.dispose()
    assert len(during) <= 2


def database_is_sleeping(engine) -> bool:
    """True once another session of this database is inside ``pg_sleep``."""
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE 'SELECT pg_sleep%'")).scalar())


def test_two_queries_wait_at_the_same_time(engine):
    sleep_in_database(engine, 0)  # connect outside the measurement
    began = time.monotonic()
    queries = [eventlet.spawn(sleep_in_database, engine, 0.5) for _ in range(2)]
    for query in queries:
        query.wait()
    elapsed = time.monotonic() - began
    assert elapsed < 0.9, f"two 0.5 s queries took {elapsed:.2f} s: they ran one after the other"


def test_the_store_appends_while_another_greenthread_waits_on_the_database(postgres_url):
    store = EventStore.open(postgres_url, signer("customers"))
    try:
        store.append("warm-up", [NewEvent("CustomerRegistered", {})], 0, CommandContext("agent-1", "agent"))
        query = eventlet.spawn(sleep_in_database, store.engine, 1.0)
        wait_for(lambda: database_is_sleeping(store.engine), timeout=5, interval=0.005,
                 what="the pg_sleep query to start")
        for number in range(20):
            store.append(f"customer-{number}", [NewEvent("CustomerRegistered", {"n": number})], 0,
                         CommandContext("agent-1", "agent"))
        assert not query.dead, "20 appends should not have needed the 1 s query to finish"
        query.wait()
        assert store.head_position() == 21 and store.verify().ok
    finally:
        store.close()
