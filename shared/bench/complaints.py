"""Complaint figures: commands per second through RPC and file → visible-in-list latency.

The customers and complaints services run under ``nameko run``, each in its
own process with its own SQLite file, as ``rpc_figures`` runs customers; one
``ClusterRpcProxy`` keeps the same number of calls in flight. Customers are
registered first and the complaints service's own directory of customers is
left to catch up before any clock starts, so no timed ``file`` pays for
learning about its customer.

* ``complaint_file_rpc_per_s``: new complaints (validation, encryption,
  SLA due times on the working calendar, append), each slice ending when
  the relay and the list projection have caught up, so the rate is sustained;
* ``complaint_respond_rpc_per_s``: replies to existing complaints (load the
  stream, decide, seal, append), measured the same way;
* ``complaint_commands_per_s``: both together, all commands over all time;
* ``complaint_file_to_visible_ms_p50/p99``: from sending ``file`` to
  ``list(customer_id=...)`` showing the complaint;
* ``customer_to_complaints_ms_p50/p99``: across services, from sending
  ``register`` to the customers service until the complaints service's
  directory has applied the ``CustomerRegistered`` (log, relay, broker,
  event handler, projection), as its ``health()`` reports.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from shared.bench.rpc_figures import (SETTLE_POLL_S, SETTLE_TIMEOUT_S, VISIBLE_TIMEOUT_S, WARM_CALLS,
                                      drive, new_cluster, percentile, registration, serving, wait_settled)
from shared.bench.store_figures import BenchError, Phase
from shared.bench.workload import QUICK, Sizes
from shared.discovery import service_spec

TOKEN_ROLE = "admin"  # files, replies and reads: only admin may do all three
THROUGHPUT_CUSTOMERS = 50
DIRECTORY = "complaints.customers"  # the complaints service's projection of the customers' events


def complaint(customer_id: str, number: int) -> dict[str, Any]:
    """A valid ``file`` payload."""
    return {"customer_id": customer_id, "channel": "phone", "category": "after_sales",
            "summary": f"Bench complaint {number}: the washing machine leaks",
            "description": "It leaked on first use and soaked the floor; the customer wants a technician.",
            "urgency": "medium"}


def silent_phase(_description: str, _total: int) -> Callable[[int], None]:
    return lambda _steps: None


def wait_directory(proxy: Any, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Until the complaints service knows every registered customer (its own projection)."""
    began = time.perf_counter()
    head = proxy.customers.health()["log_position"]
    while True:
        projections = proxy.complaints.health()["projections"]
        if all(p["positions"].get("customers", head) >= head for p in projections.values()):
            return
        if time.perf_counter() - began > timeout:
            raise BenchError(f"complaints did not learn the customers' events within {timeout:.0f}s: {projections}")
        time.sleep(SETTLE_POLL_S)


def register_customers(proxy: Any, count: int, numbers: itertools.count) -> list[str]:
    replies = [proxy.customers.register.call_async(**registration(next(numbers))) for _ in range(count)]
    return [reply.result()["customer_id"] for reply in replies]


def throughput(proxy: Any, sizes: Sizes, customers: list[str], tick: Callable[[int], None]) -> dict[str, Any]:
    """``file`` and ``respond`` slices taking turns, each timed until the service has caught up."""
    numbers = itertools.count(1)
    round_robin = itertools.cycle(customers)
    filed: list[str] = []

    def file() -> Any:
        return proxy.complaints.file.call_async(**complaint(next(round_robin), next(numbers)))

    for reply in [file() for _ in range(WARM_CALLS)]:
        filed.append(reply.result()["complaint_id"])
    targets = itertools.cycle(filed)

    def respond() -> Any:
        return proxy.complaints.respond.call_async(next(targets), "We are on it: a technician calls you today.")

    wait_settled(proxy, "complaints")
    slice_s = sizes.rpc_seconds / sizes.rpc_rounds
    calls = {"file": 0, "respond": 0}
    seconds = {"file": 0.0, "respond": 0.0}
    for _round in range(sizes.rpc_rounds):
        for name, call in (("file", file), ("respond", respond)):
            completed, spent = drive(call, slice_s, sizes.rpc_in_flight)
            calls[name] += completed
            seconds[name] += spent + wait_settled(proxy, "complaints")
            tick(1)
    return {"complaint_file_rpc_per_s": calls["file"] / seconds["file"],
            "complaint_respond_rpc_per_s": calls["respond"] / seconds["respond"],
            "complaint_commands_per_s": sum(calls.values()) / sum(seconds.values()),
            "complaint_rpc_calls": sum(calls.values()), "complaint_rpc_in_flight": sizes.rpc_in_flight}


def time_to_visible(proxy: Any, customer_id: str, number: int) -> float:
    """Milliseconds from sending ``file`` to ``list(customer_id=...)`` showing the complaint."""
    began = time.perf_counter()
    complaint_id = proxy.complaints.file(**complaint(customer_id, number))["complaint_id"]
    deadline = began + VISIBLE_TIMEOUT_S
    while not any(item["complaint_id"] == complaint_id
                  for item in proxy.complaints.list(customer_id=customer_id)["items"]):
        if time.perf_counter() > deadline:
            raise BenchError(f"complaint {complaint_id} not visible in list() after {VISIBLE_TIMEOUT_S:.0f}s")
    return (time.perf_counter() - began) * 1000


def time_to_known(proxy: Any, number: int) -> tuple[str, float]:
    """Register a customer; milliseconds until the complaints service's directory has applied it."""
    began = time.perf_counter()
    customer_id = proxy.customers.register(**registration(number))["customer_id"]
    position = proxy.customers.health()["log_position"]  # calls are sequential: this one's event
    deadline = began + VISIBLE_TIMEOUT_S
    while proxy.complaints.health()["projections"][DIRECTORY]["positions"]["customers"] < position:
        if time.perf_counter() > deadline:
            raise BenchError(f"customer {customer_id} not known to complaints after {VISIBLE_TIMEOUT_S:.0f}s")
    return customer_id, (time.perf_counter() - began) * 1000


def latency(proxy: Any, samples: int, numbers: itertools.count, tick: Callable[[int], None]) -> dict[str, Any]:
    """Per sample: a new customer known across services, then a complaint for it visible in the list."""
    known, visible = [], []
    for sample in range(1, samples + 1):
        customer_id, milliseconds = time_to_known(proxy, next(numbers))
        known.append(milliseconds)
        visible.append(time_to_visible(proxy, customer_id, sample))
        tick(1)
    return {"complaint_file_to_visible_ms_p50": percentile(visible, 50),
            "complaint_file_to_visible_ms_p99": percentile(visible, 99),
            "complaint_file_to_visible_samples": len(visible),
            "customer_to_complaints_ms_p50": percentile(known, 50),
            "customer_to_complaints_ms_p99": percentile(known, 99)}


def complaints_figures(amqp_uri: str, workdir: Path | None = None, sizes: Sizes = QUICK,
                       phase: Phase = silent_phase) -> dict[str, Any]:
    """Start customers and complaints, measure, and stop them whatever happens (Ctrl-C included)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="crm-bench-complaints-") as scratch:
            return complaints_figures(amqp_uri, Path(scratch), sizes, phase)
    cluster = new_cluster(amqp_uri, workdir / "data", TOKEN_ROLE,
                          COMPLAINTS={"sla_timer_seconds": 3600})  # the sweep is not what is measured
    services = [(spec, cluster.config_for(spec)) for spec in (service_spec("customers"), service_spec("complaints"))]
    with serving(cluster, workdir, services, phase, "Complaints") as proxy:
        preparing = phase("Complaints: register customers", 1)
        numbers = itertools.count(1)
        customers = register_customers(proxy, THROUGHPUT_CUSTOMERS, numbers)
        wait_directory(proxy)
        preparing(1)
        figures = throughput(proxy, sizes, customers, phase("Complaints: file and respond", 2 * sizes.rpc_rounds))
        figures.update(latency(proxy, sizes.latency_samples, numbers,
                               phase("Complaints: customer known, file → list()", sizes.latency_samples)))
    return figures
