"""Services ride out a broker outage under load: they stay up, answer again within seconds, lose nothing.

customers and complaints run in this process, in a virtual host of their
own; the outage closes that vhost's connections and refuses new ones for
``OUTAGE_SECONDS``, as a broker restart does, while agents keep
registering customers.
"""

from __future__ import annotations

import time

import eventlet

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from tests.e2e.outages import outage
from tests.support import rpc_as, running, service_config, wait_for

OUTAGE_SECONDS = 30
ANSWER_WITHIN_SECONDS = 5
AGENTS = 10


class Agents:
    """``AGENTS`` callers registering customers until told to stop; each remembers what was acknowledged."""

    def __init__(self, config):
        self.config = config
        self.acknowledged: dict[str, str] = {}  # phone -> customer_id the service answered
        self.failed: list[str] = []  # phones whose registration the caller saw fail
        self.running = True
        self.pool = eventlet.GreenPool()
        for agent in range(AGENTS):
            self.pool.spawn(self._work, agent)

    def _work(self, agent: int) -> None:
        number = 0
        while self.running:
            phone = f"13{agent:02d}{number:07d}"
            number += 1
            try:
                with rpc_as(self.config, "agent", timeout=5) as proxy:
                    self.acknowledged[phone] = proxy.customers.register(name=f"客户{phone}", phone=phone)["customer_id"]
            except Exception:  # noqa: BLE001 - the caller saw the outage; the service decides what ran
                self.failed.append(phone)
                eventlet.sleep(0.2)  # a caller's pause before trying a new registration

    def stop(self) -> None:
        self.running = False
        self.pool.waitall()


def answers(config, service: str) -> bool:
    try:
        with rpc_as(config, "admin", timeout=2) as proxy:
            return bool(getattr(proxy, service).health())
    except Exception:  # noqa: BLE001 - not yet: the broker or the service is still away
        return False


def test_services_ride_out_a_broker_outage_under_load(fault_vhost, tmp_path):
    config = service_config(tmp_path, fault_vhost)  # SQLite stores in tmp_path
    with running(CustomersService, config) as customers, running(ComplaintsService, config) as complaints:
        agents = Agents(config)
        wait_for(lambda: len(agents.acknowledged) >= 20, what="the load to get going")
        with outage(fault_vhost):
            time.sleep(OUTAGE_SECONDS)  # the outage is what is under test
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
        with rpc_as(config, "agent") as proxy:
            for phone, customer_id in agents.acknowledged.items():  # each acknowledged command once
                found = proxy.customers.find(phone=phone)
                assert [item["customer_id"] for item in found["items"]] == [customer_id], phone
            for phone in agents.failed:  # a failed one ran at most once
                assert proxy.customers.find(phone=phone)["total"] <= 1, phone
        print(f"\nanswered {answered_after:.2f} s after the broker came back; complaints caught up in "
              f"{caught_up:.2f} s; {len(agents.acknowledged)} registrations acknowledged, {len(agents.failed)} failed")
