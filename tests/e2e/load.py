"""Load for fault tests: agents registering customers while something breaks, and what must hold after."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

import eventlet
import eventlet.event

from shared.cli import rpc as cli_rpc
from tests.support import rpc_as, token, wait_for

AGENTS = 10
CLI_AGENTS = 2  # of the AGENTS, those that register the way ``crm customers register`` does
CATCH_UP_SECONDS = 5


class Agents:
    """``AGENTS`` callers registering customers until told to stop; each remembers what was acknowledged.

    ``CLI_AGENTS`` of them call through the command line's own call path (a
    fresh ``command_id`` and the caller's deadline on every command).
    """

    def __init__(self, config):
        self.config = config
        self.cli = cli_pointed_at(config)
        self.cli.__enter__()
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
                self.acknowledged[phone] = self._register(agent, phone)["customer_id"]
            except Exception:  # noqa: BLE001 - the caller saw the outage; the service decides what ran
                self.failed.append(phone)
                with eventlet.Timeout(0.2, False):  # a caller's pause before trying again, cut short by stop()
                    self.stopped.wait()

    def _register(self, agent: int, phone: str) -> dict:
        if agent < CLI_AGENTS:
            return cli_rpc.rpc_call("customers", "register", name=f"客户{phone}", phone=phone)
        with rpc_as(self.config, "agent", timeout=5) as proxy:
            return proxy.customers.register(name=f"客户{phone}", phone=phone)

    def stop(self) -> None:
        self.stopped.send()
        self.pool.waitall()
        self.cli.__exit__(None, None, None)


@contextlib.contextmanager
def cli_pointed_at(config) -> Iterator[None]:
    """The command line's settings, as a user's environment would give them, while the block runs."""
    saved = {key: os.environ.get(key) for key in ("AMQP_URI", "CRM_DATA_DIR")}
    os.environ.update(AMQP_URI=config["AMQP_URI"], CRM_DATA_DIR=config["CRM_DATA_DIR"])
    cli_rpc.configure(token=token("agent"), timeout=5)
    try:
        yield
    finally:
        cli_rpc.configure()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def assert_settled(config, catch_up_seconds: float = CATCH_UP_SECONDS) -> float:
    """Once the load stopped: the relay drains, complaints catch up in time, projections equal a rebuild, logs verify.

    Returns how long complaints took to catch up, in seconds.
    """
    with rpc_as(config, "admin") as proxy:
        head = proxy.customers.health()["log_position"]
        started = time.monotonic()
        wait_for(lambda: proxy.customers.health()["relay_backlog"] == 0, timeout=catch_up_seconds,
                 what="the relay's backlog to drain")
        wait_for(lambda: proxy.complaints.health()["projections"]["complaints.customers"]["positions"]
                 ["customers"] >= head, timeout=catch_up_seconds, what="complaints to catch up")
        caught_up = time.monotonic() - started
        assert all(report["equal"] for report in proxy.customers.rebuild_projections())
        assert all(report["equal"] for report in proxy.complaints.rebuild_projections())
        assert proxy.customers.verify_log()["ok"] and proxy.complaints.verify_log()["ok"]
    return caught_up


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
