"""Callback figures: attempts recorded per second through RPC, and resolved complaint → callback in the queue.

The customers, complaints and callbacks services and the no-op service run
under ``nameko run``, each in its own process with its own SQLite file, and
are driven by one ``ClusterRpcProxy`` keeping the same number of calls in
flight, as ``rpc_figures`` does.

* ``callback_attempts_per_s``: ``record_attempt`` (validation, load the
  callback's stream, decide the retry inside the customer's calling window
  on the China working calendar, seal the notes, append), each slice ending
  when the relay and the projections have caught up, so the rate is
  sustained; it takes turns with no-op slices, and ``callback_attempts_vs_noop``
  is its share of the no-op rate measured in the same part (target ≥ 0.5);
* ``complaint_resolved_to_callback_due_ms_p50/p99``: from sending
  ``resolve`` to the complaints service until the satisfaction callback it
  causes is in ``list_due`` (complaints' log, relay, broker, the callbacks'
  reaction, its append, its list projection); target p99 < 100 ms.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from shared.bench.complaints import complaint, register_customers, silent_phase
from shared.bench.rpc_figures import (NOOP, VISIBLE_TIMEOUT_S, WARM_CALLS, drive, new_cluster, percentile, serving,
                                      wait_settled)
from shared.bench.store_figures import BenchError, Phase
from shared.bench.workload import QUICK, Sizes
from shared.discovery import service_spec

TOKEN_ROLE = "admin"  # schedules, records attempts, files and resolves complaints, reads the queue
CUSTOMERS = 20
# Callbacks scheduled per second of attempt slices; each takes MAX_ATTEMPTS busy attempts before it fails (and a
# further attempt would be a Conflict), so 60 of them last for 1,200 attempts a second, well above what one takes.
CALLBACKS_PER_SECOND = 60
MAX_ATTEMPTS = 20
FAR = "2100-01-01T00:00:00+00:00"  # the queue read "before" any due time: due times wait for the window


def wait_known(proxy: Any, timeout: float = VISIBLE_TIMEOUT_S * 6) -> None:
    """Until callbacks and complaints have applied every customers event (their own projections)."""
    head = proxy.customers.health()["log_position"]
    began = time.perf_counter()
    for service in ("callbacks", "complaints"):
        while any(p["positions"].get("customers", head) < head
                  for p in getattr(proxy, service).health()["projections"].values()):
            if time.perf_counter() - began > timeout:
                raise BenchError(f"{service} did not learn the customers' events within {timeout:.0f}s")
            time.sleep(0.01)


def throughput(proxy: Any, sizes: Sizes, customers: list[str], tick: Callable[[int], None]) -> dict[str, Any]:
    """No-op and ``record_attempt`` slices taking turns, each attempt slice timed until callbacks caught up."""
    owners = itertools.cycle(customers)
    callbacks = max(sizes.rpc_in_flight * 5, int(CALLBACKS_PER_SECOND * sizes.rpc_seconds))
    replies = [proxy.callbacks.schedule.call_async(next(owners), "lost_customer") for _ in range(callbacks)]
    targets = itertools.cycle([reply.result()["callback_id"] for reply in replies])
    noop = lambda: proxy.bench_noop.ping.call_async()  # noqa: E731
    busy = lambda: proxy.callbacks.record_attempt.call_async(next(targets), "busy",  # noqa: E731
                                                            notes="busy tone; try after lunch")
    for warm in (noop, busy):
        for reply in [warm() for _call in range(WARM_CALLS)]:
            reply.result()
    wait_settled(proxy, "callbacks")
    slice_s = sizes.rpc_seconds / sizes.rpc_rounds
    calls, seconds = {"noop": 0, "attempt": 0}, {"noop": 0.0, "attempt": 0.0}
    for _round in range(sizes.rpc_rounds):
        for name, call in (("noop", noop), ("attempt", busy)):
            completed, spent = drive(call, slice_s, sizes.rpc_in_flight)
            calls[name] += completed
            seconds[name] += spent + (wait_settled(proxy, "callbacks") if name == "attempt" else 0.0)
            tick(1)
    noop_rate, attempt_rate = calls["noop"] / seconds["noop"], calls["attempt"] / seconds["attempt"]
    return {"callback_attempts_per_s": attempt_rate, "callback_noop_rpc_per_s": noop_rate,
            "callback_attempts_vs_noop": attempt_rate / noop_rate, "callback_attempt_calls": calls["attempt"]}


def time_to_due(proxy: Any, customer_id: str, number: int) -> float:
    """Milliseconds from sending ``resolve`` to the satisfaction callback being in ``list_due``."""
    complaint_id = proxy.complaints.file(**complaint(customer_id, number))["complaint_id"]
    began = time.perf_counter()
    proxy.complaints.resolve(complaint_id, "A technician replaced the seal.")
    deadline = began + VISIBLE_TIMEOUT_S
    while not any(item["complaint_id"] == complaint_id
                  for item in proxy.callbacks.list_due(before=FAR, kind="satisfaction", limit=500)["items"]):
        if time.perf_counter() > deadline:
            raise BenchError(f"no satisfaction callback for complaint {complaint_id} after {VISIBLE_TIMEOUT_S:.0f}s")
    return (time.perf_counter() - began) * 1000


def latency(proxy: Any, samples: int, customers: list[str], tick: Callable[[int], None]) -> dict[str, Any]:
    times = []
    for number, customer_id in zip(range(1, samples + 1), itertools.cycle(customers)):
        times.append(time_to_due(proxy, customer_id, number))
        tick(1)
    return {"complaint_resolved_to_callback_due_ms_p50": percentile(times, 50),
            "complaint_resolved_to_callback_due_ms_p99": percentile(times, 99),
            "complaint_resolved_to_callback_due_samples": samples}


def callbacks_figures(amqp_uri: str, workdir: Path | None = None, sizes: Sizes = QUICK,
                      phase: Phase = silent_phase) -> dict[str, Any]:
    """Start the services, measure, and stop them whatever happens (Ctrl-C included)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="crm-bench-callbacks-") as scratch:
            return callbacks_figures(amqp_uri, Path(scratch), sizes, phase)
    cluster = new_cluster(amqp_uri, workdir / "data", TOKEN_ROLE, COMPLAINTS={"sla_timer_seconds": 3600},
                          CALLBACKS={"timer_seconds": 3600, "max_attempts": MAX_ATTEMPTS})
    specs = [service_spec(name) for name in ("customers", "complaints", "callbacks")]
    services = [(spec, cluster.config_for(spec)) for spec in specs] + [(NOOP, {"AMQP_URI": amqp_uri})]
    with serving(cluster, workdir, services, phase, "Callbacks") as proxy:
        preparing = phase("Callbacks: register customers", 1)
        customers = register_customers(proxy, CUSTOMERS, itertools.count(1))
        wait_known(proxy)
        preparing(1)
        figures = throughput(proxy, sizes, customers, phase("Callbacks: no-op vs record_attempt",
                                                            2 * sizes.rpc_rounds))
        figures.update(latency(proxy, sizes.latency_samples, customers,
                               phase("Callbacks: resolve → satisfaction callback due", sizes.latency_samples)))
    return figures
