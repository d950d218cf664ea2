"""Services ride out a broker outage under load: they stay up, answer again within seconds, lose nothing.

customers and complaints run in this process while agents keep registering
customers, some through the command line's call path. The broker goes away
in three ways: a virtual host of their own has its connections closed (as
RabbitMQ's ``close_all_connections`` does), or closed and refused for 30 s;
or a RabbitMQ node of the test's own is shut down and started again, a real
broker restart. Each runs with one replica of each service on SQLite and
with two replicas of each on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager


from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from tests.e2e.load import Agents, answers, assert_each_registration_ran_once, assert_settled
from tests.e2e.outages import outage
from tests.e2e.private_broker import broker_node
from tests.support import running, wait_for

ANSWER_WITHIN_SECONDS = 5
OUTAGE_SECONDS = 30


def test_services_ride_out_closed_connections_under_load(fault_vhost, deployment):
    ride_out(*deployment(fault_vhost), lambda: outage(fault_vhost))


def test_services_ride_out_a_30s_outage_under_load(fault_vhost, deployment):
    @contextlib.contextmanager
    def thirty_seconds_away():
        with outage(fault_vhost):
            time.sleep(OUTAGE_SECONDS)  # the outage is what is under test
        yield

    ride_out(*deployment(fault_vhost), thirty_seconds_away)


def test_services_ride_out_a_real_broker_restart_under_load(deployment):
    with broker_node() as node:
        @contextlib.contextmanager
        def restarted():
            node.stop()
            node.start()
            yield

        ride_out(*deployment(node.amqp_uri), restarted)


def ride_out(config: dict, replicas: int, broker_away: Callable[[], ContextManager]) -> None:
    """Under load, take the broker away with ``broker_away()`` and check what must hold once it is back."""
    with contextlib.ExitStack() as stack:
        containers = [stack.enter_context(running(service, config))
                      for service in (CustomersService, ComplaintsService) for _replica in range(replicas)]
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

        assert not any(container._died.ready() for container in containers)
        caught_up = assert_settled(config)
        assert_each_registration_ran_once(config, agents)
        print(f"\nanswered {answered_after:.2f} s after the broker came back; complaints caught up in "
              f"{caught_up:.2f} s; {len(agents.acknowledged)} registrations acknowledged, {len(agents.failed)} failed")
