"""A consumer that was down while its upstream wrote 5,000 events catches up within seconds.

complaints stops (every replica of it); customers goes on registering;
complaints starts again and must know every customer, without applying any
event twice. Once with one replica of each service on SQLite, once with
two of each on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time

import eventlet

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from tests.support import rpc_as, running, wait_for

EVENTS = 5000
WRITERS = 10
CATCH_UP_SECONDS = 5


def register_many(config, count: int) -> None:
    def writer(start: int) -> None:
        with rpc_as(config, "agent") as proxy:
            for number in range(start, count, WRITERS):
                proxy.customers.register(name=f"客户{number}", phone=f"137{number:08d}")

    pool = eventlet.GreenPool()
    for start in range(WRITERS):
        pool.spawn(writer, start)
    pool.waitall()


def test_a_consumer_catches_up_on_5000_events_written_while_it_was_down(fault_vhost, deployment):
    config, replicas = deployment(fault_vhost)
    with contextlib.ExitStack() as customers:
        for _replica in range(replicas):
            customers.enter_context(running(CustomersService, config))
        with running(ComplaintsService, config):
            pass  # declares complaints' durable queue, then stops
        register_many(config, EVENTS)
        with rpc_as(config, "admin") as proxy:
            head = proxy.customers.health()["log_position"]
            wait_for(lambda: proxy.customers.health()["relay_backlog"] == 0, timeout=60,
                     what="every event to be published")
        started = time.monotonic()
        with contextlib.ExitStack() as complaints, rpc_as(config, "admin") as proxy:
            for _replica in range(replicas):
                complaints.enter_context(running(ComplaintsService, config))
            known = lambda: proxy.complaints.health()["projections"]["complaints.customers"]["positions"]  # noqa: E731
            wait_for(lambda: known()["customers"] >= head, timeout=CATCH_UP_SECONDS,
                     what="complaints to apply every customers event")
            caught_up = time.monotonic() - started
            assert head >= EVENTS
            assert all(report["equal"] for report in proxy.complaints.rebuild_projections())
            assert proxy.complaints.health()["dead_letters"] == 0
    print(f"\ncomplaints caught up on {head} customers events in {caught_up:.2f} s")
