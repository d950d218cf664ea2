"""Two replicas of each service over PostgreSQL, behind the same queues.

Commands spread over both replicas; one relay per service publishes; the
complaints SLA timer runs on one replica; killing a replica under load
loses nothing and runs nothing twice.
"""

from __future__ import annotations

import contextlib

from nameko.testing.utils import get_extension
from sqlalchemy import create_engine, select

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.event_log import EventLog
from shared.eventstore.tables import leases
from shared.metrics import Metrics
from shared.timers import LeasedTimer
from tests.e2e.load import Agents, assert_each_registration_ran_once, assert_settled
from tests.support import running, service_config, wait_for


def registers_served(container) -> float:
    registry = get_extension(container, Metrics).registry
    return registry.get_sample_value("crm_calls_total", {"service": "customers", "method": "register",
                                                         "outcome": "ok"}) or 0.0


def lease_holders(url: str) -> dict[str, str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.connect() as connection:
        holders = dict(connection.execute(select(leases.c.name, leases.c.owner)).all())
    engine.dispose()
    return holders


def relay_owner(container) -> str:
    return get_extension(container, EventLog).relay.lease.owner


def test_two_replicas_share_the_work_and_survive_losing_one(fault_vhost, tmp_path, postgres_url_factory):
    customers_url, complaints_url = postgres_url_factory(), postgres_url_factory()
    config = service_config(tmp_path, fault_vhost, customers=customers_url, complaints=complaints_url)
    with contextlib.ExitStack() as stack:
        customers = [stack.enter_context(running(CustomersService, config)) for _replica in range(2)]
        complaints = [stack.enter_context(running(ComplaintsService, config)) for _replica in range(2)]
        agents = Agents(config)
        wait_for(lambda: all(registers_served(replica) >= 10 for replica in customers), timeout=30,
                 what="both customers replicas to serve registrations")

        holders = lease_holders(customers_url)
        assert holders["customers.relay"] in {relay_owner(replica) for replica in customers}
        timers = [get_extension(replica, LeasedTimer).keeper for replica in complaints]
        wait_for(lambda: sum(timer.held for timer in timers) == 1, what="one SLA timer holder")
        assert lease_holders(complaints_url)["complaints.sla-timer"] in {timer.lease.owner for timer in timers}

        customers[0].kill()  # a replica dies under load; the other serves on
        acknowledged = len(agents.acknowledged)
        wait_for(lambda: len(agents.acknowledged) >= acknowledged + 30, timeout=30, what="the load to go on")
        agents.stop()

        assert_settled(config)
        assert lease_holders(customers_url)["customers.relay"] == relay_owner(customers[1])
        assert_each_registration_ran_once(config, agents)
