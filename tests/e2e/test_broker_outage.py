"""Services ride out a broker outage under load: they stay up, answer again within seconds, lose nothing.

customers and complaints run in this process while agents keep registering
customers. The broker goes away in three ways: a virtual host of their own
has its connections closed (as RabbitMQ's ``close_all_connections`` does),
or closed and refused for 30 s; or a RabbitMQ node of the test's own is
shut down and started again, a real broker restart.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from tests.e2e.load import Agents, answers, assert_each_registration_ran_once
from tests.e2e.outages import outage
from tests.e2e.private_broker import broker_node
from tests.support import rpc_as, running, service_config, wait_for

ANSWER_WITHIN_SECONDS = 5


@pytest.mark.parametrize("outage_seconds", [0, 30], ids=["connections-closed", "30s-outage"])
def test_services_ride_out_a_broker_outage_under_load(fault_vhost, tmp_path, outage_seconds):
    @contextlib.contextmanager
    def broker_away():
        with outage(fault_vhost):
            time.sleep(outage_seconds)  # the outage is what is under test
        yield

    ride_out(service_config(tmp_path, fault_vhost), broker_away)


def test_services_ride_out_a_real_broker_restart_under_load(tmp_path):
    with broker_node() as node:
        @contextlib.contextmanager
        def broker_restarted():
            node.stop()
            node.start()
            yield

        ride_out(service_config(tmp_path, node.amqp_uri), broker_restarted)


def ride_out(config, broker_away) -> None:
    """Under load, take the broker away with ``broker_away()`` and check what must hold once it is back."""
    with running(CustomersService, config) as customers, running(ComplaintsService, config) as complaints:
        agents = Agents(config)
        wait_for(lambda: len(agents.acknowledged) >= 20, what="the load to get going")
        with broker_away():
            back = time.monotonic()
        wait_for(lambda: answers(config, "customers") and answers(config, "complaints"),
                 timeout=ANSWER_WITHIN_SECONDS, what="both services to answer after the outage")
        answered_after = time.monotonic() - back
        acknowledged_before = len(agents.acknowledged)
        wait_for(lambda: len(agents.acknowledged) >= acknowledged_before + 20, what="the load to go on")
        agents.stop()

        assert not customers._died.ready() and not complaints._died.ready()
        with rpc_as(config, "admin") as proxy:
            head = proxy.customers.health()["log_position"]
            started = time.monotonic()
            wait_for(lambda: proxy.customers.health()["relay_backlog"] == 0, what="the relay's backlog to drain")
            wait_for(lambda: proxy.complaints.health()["projections"]["complaints.customers"]["positions"]
                     ["customers"] >= head, timeout=30, what="complaints to know every customer")
            caught_up = time.monotonic() - started
            assert proxy.customers.verify_log()["ok"]
        assert_each_registration_ran_once(config, agents)
        print(f"\nanswered {answered_after:.2f} s after the broker came back; complaints caught up in "
              f"{caught_up:.2f} s; {len(agents.acknowledged)} registrations acknowledged, {len(agents.failed)} failed")
