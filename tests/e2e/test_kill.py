"""kill -9 of each service under load, with the services as their own ``nameko run`` processes.

After each kill the service is started again, as ``crm up`` or a container
runtime would. Then every acknowledged registration is in the log exactly
once, a failed one at most once, complaints' projections equal their
rebuild, every log verifies, and complaints caught up within seconds.
"""

from __future__ import annotations

import time

import pytest

from shared.discovery import service_spec
from shared.processes import ServiceProcess, stop_processes, write_service_config
from tests.e2e.load import Agents, answers, assert_each_registration_ran_once, assert_settled
from tests.support import service_config, wait_for

START_SECONDS = 60


@pytest.fixture
def services(fault_vhost, tmp_path):
    config = service_config(tmp_path, fault_vhost)  # SQLite stores in tmp_path
    children = {name: ServiceProcess(name, service_spec(name).service_class,
                                     write_service_config(tmp_path / "run", name, config),
                                     tmp_path / "logs" / f"{name}.log")
                for name in ("customers", "complaints")}
    for child in children.values():
        child.start()
    try:
        for name in children:
            wait_for(lambda name=name: answers(config, name), timeout=START_SECONDS, what=f"{name} to start")
        yield config, children
    finally:
        stop_processes(list(children.values()), grace=10)


@pytest.mark.parametrize("victim", ["customers", "complaints"])
def test_kill_9_under_load_loses_nothing_and_runs_nothing_twice(services, victim):
    config, children = services
    agents = Agents(config)
    wait_for(lambda: len(agents.acknowledged) >= 30, timeout=30, what="the load to get going")

    children[victim].kill()  # SIGKILL: no shutdown, leases and unacknowledged messages left behind
    killed_at = time.monotonic()
    children[victim].start()
    wait_for(lambda: answers(config, victim), timeout=START_SECONDS, what=f"{victim} to start again")
    back_after = time.monotonic() - killed_at
    acknowledged = len(agents.acknowledged)
    wait_for(lambda: len(agents.acknowledged) >= acknowledged + 30, timeout=30, what="the load to go on")
    agents.stop()

    caught_up = assert_settled(config)
    assert_each_registration_ran_once(config, agents)
    print(f"\n{victim} answered {back_after:.2f} s after kill -9; complaints caught up in {caught_up:.2f} s; "
          f"{len(agents.acknowledged)} registrations acknowledged, {len(agents.failed)} failed")
