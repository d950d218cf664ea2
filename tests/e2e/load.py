"""Load for fault tests: agents registering customers while something breaks, and what must hold after."""

from __future__ import annotations

import eventlet
import eventlet.event

from tests.support import rpc_as

AGENTS = 10


class Agents:
    """``AGENTS`` callers registering customers until told to stop; each remembers what was acknowledged."""

    def __init__(self, config):
        self.config = config
        self.acknowledged: dict[str, str] = {}  # phone -> customer_id the service answered
        self.failed: list[str] = []  # phones whose registration the caller saw fail
        self.stopped = eventlet.event.Event()
        self.pool = eventlet.GreenPool()
        for agent in range(AGENTS):
            self.pool.spawn(self._work, agent)

    def _work(self, agent: int) -> None:
        number = 0
        while not self.stopped.ready():
            phone = f"13{agent:02d}{number:07d}"
            number += 1
            try:
                with rpc_as(self.config, "agent", timeout=5) as proxy:
                    self.acknowledged[phone] = proxy.customers.register(name=f"客户{phone}", phone=phone)["customer_id"]
            except Exception:  # noqa: BLE001 - the caller saw the outage; the service decides what ran
                self.failed.append(phone)
                with eventlet.Timeout(0.2, False):  # a caller's pause before trying again, cut short by stop()
                    self.stopped.wait()

    def stop(self) -> None:
        self.stopped.send()
        self.pool.waitall()


def answers(config, service: str) -> bool:
    """Whether ``service`` answers ``health()`` now."""
    try:
        with rpc_as(config, "admin", timeout=2) as proxy:
            return bool(getattr(proxy, service).health())
    except Exception:  # noqa: BLE001 - not yet: the broker or the service is still away
        return False


def assert_each_registration_ran_once(config, agents: Agents) -> None:
    """Every acknowledged registration is in the directory once; one the caller saw fail, at most once."""
    with rpc_as(config, "agent") as proxy:
        for phone, customer_id in agents.acknowledged.items():
            found = proxy.customers.find(phone=phone)
            assert [item["customer_id"] for item in found["items"]] == [customer_id], phone
        for phone in agents.failed:
            assert proxy.customers.find(phone=phone)["total"] <= 1, phone
