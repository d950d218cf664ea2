"""kill -9 of each service under load, with the services as their own ``nameko run`` processes.

One replica of each service on SQLite, or two of each on PostgreSQL, where
one replica of the victim is killed while the other serves on. After each
kill the killed process is started again, as ``crm up`` or a container
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
from tests.support import migrated_by_owner, wait_for

START_SECONDS = 60


@pytest.fixture
def services(fault_vhost, tmp_path, deployment):
    config, replicas = deployment(fault_vhost)
    children = {name: [ServiceProcess(name, service_spec(name).service_class,
                                      write_service_config(tmp_path / "run", name, config),
                                      tmp_path / "logs" / f"{name}-{replica}.log") for replica in range(replicas)]
                for name in ("customers", "complaints")}
    for name in children:
        migrated_by_owner(service_spec(name).load_class(), config)
    every_child = [child for replicas_of_one in children.values() for child in replicas_of_one]
    for child in every_child:
        child.start()
    try:
        for name in children:
            wait_for(lambda name=name: answers(config, name), timeout=START_SECONDS, what=f"{name} to start")
        yield config, children
    finally:
        stop_processes(every_child, grace=10)


@pytest.mark.parametrize("victim", ["customers", "complaints"])
def test_kill_9_under_load_loses_nothing_and_runs_nothing_twice(services, victim):
    config, children = services
    agents = Agents(config)
    wait_for(lambda: len(agents.acknowledged) >= 30, timeout=30, what="the load to get going")

    children[victim][0].kill()  # SIGKILL: no shutdown, leases and unacknowledged messages left behind
    killed_at = time.monotonic()
    children[victim][0].start()
    wait_for(lambda: answers(config, victim), timeout=START_SECONDS, what=f"{victim} to start again")
    back_after = time.monotonic() - killed_at
    acknowledged = len(agents.acknowledged)
    wait_for(lambda: len(agents.acknowledged) >= acknowledged + 30, timeout=30, what="the load to go on")
    agents.stop()

    caught_up = assert_settled(config)
    assert_each_registration_ran_once(config, agents)
    assert [child.exited() for replicas in children.values() for child in replicas] == [None] * sum(
        map(len, children.values()))  # the restarted process, and every other, still runs
    print(f"\n{victim} answered {back_after:.2f} s after kill -9; complaints caught up in {caught_up:.2f} s; "
          f"{len(agents.acknowledged)} registrations acknowledged, {len(agents.failed)} failed")
