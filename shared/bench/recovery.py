"""Recovery figures: how long the complaints service takes to catch up after faults.

customers and complaints run under ``nameko run`` in the bench's own vhost.

* ``catch_up_after_consumer_restart_s``: complaints is stopped while
  customers registers ``RECOVERY_CUSTOMERS`` customers; from the moment the
  restarted complaints answers ``health()`` until its projection of the
  customers' log has applied all of them (durable queue, gap fills, pulls);
* ``catch_up_after_broker_restart_s``: the vhost's connections are closed
  and refused for ``OUTAGE_SECONDS`` (to the services this is a broker
  restart; the broker itself and its other vhosts are left alone); from the
  broker's return until both services answer and complaints knows every
  customer registered just before the outage. Needs ``rabbitmqctl`` for the
  bench's own vhost; without it the figure is null.
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from shared.bench.complaints import register_customers, wait_directory
from shared.bench.rpc_figures import CALL_TIMEOUT_S, STOP_GRACE_S, new_cluster, start_service, wait_ready
from shared.bench.scratch import rabbitmqctl
from shared.bench.store_figures import Phase
from shared.discovery import service_spec
from shared.processes import stop_processes

RECOVERY_CUSTOMERS = 1000
OUTAGE_SECONDS = 5.0


def recovery_figures(amqp_uri: str, vhost: str | None, workdir: Path, phase: Phase) -> dict[str, Any]:
    """Start both services, break things, time the catch-up, and stop them whatever happens."""
    cluster = new_cluster(amqp_uri, workdir / "data", "admin", COMPLAINTS={"sla_timer_seconds": 3600})
    customers_spec, complaints_spec = service_spec("customers"), service_spec("complaints")
    customers = start_service(customers_spec, cluster.config_for(customers_spec), workdir)
    complaints = start_service(complaints_spec, cluster.config_for(complaints_spec), workdir)
    started = [customers, complaints]
    figures: dict[str, Any] = {"catch_up_after_consumer_restart_s": None, "catch_up_after_broker_restart_s": None}
    try:
        wait_ready(cluster, started)
        numbers = itertools.count(1)
        tick = phase("Recovery: consumer restart, broker outage", 2)
        with _proxy(cluster) as proxy:
            register_customers(proxy, 10, numbers)
            wait_directory(proxy)
            stop_processes([complaints], STOP_GRACE_S)
            register_customers(proxy, RECOVERY_CUSTOMERS, numbers)
        complaints = start_service(complaints_spec, cluster.config_for(complaints_spec), workdir)
        started.append(complaints)
        wait_ready(cluster, [complaints])
        began = time.perf_counter()
        with _proxy(cluster) as proxy:
            wait_directory(proxy)
        figures["catch_up_after_consumer_restart_s"] = round(time.perf_counter() - began, 3)
        tick(1)
        ctl = shutil.which("rabbitmqctl")
        if vhost is not None and ctl is not None:
            with _proxy(cluster) as proxy:
                register_customers(proxy, 10, numbers)
            _outage(ctl, vhost, OUTAGE_SECONDS)
            began = time.perf_counter()
            wait_ready(cluster, [customers, complaints])
            with _proxy(cluster) as proxy:
                wait_directory(proxy)
            figures["catch_up_after_broker_restart_s"] = round(time.perf_counter() - began, 3)
        tick(1)
    finally:
        stop_processes(started, STOP_GRACE_S)
    return figures


def _proxy(cluster) -> ClusterRpcProxy:
    return ClusterRpcProxy(cluster.config, context_data={"authorization": cluster.token}, timeout=CALL_TIMEOUT_S)


def _outage(ctl: str, vhost: str, seconds: float) -> None:
    """The vhost's connections closed and new ones refused for ``seconds``, then allowed again."""
    rabbitmqctl(ctl, "set_vhost_limits", "-p", vhost, '{"max-connections": 0}')
    try:
        rabbitmqctl(ctl, "close_all_connections", "-p", vhost, "crm bench: broker outage")
        time.sleep(seconds)  # the outage is what is measured after
    finally:
        rabbitmqctl(ctl, "clear_vhost_limits", "-p", vhost)
