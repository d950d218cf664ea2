"""RPC figures: the customers service beside a no-op service, each in its own process.

Both run under ``nameko run``, started as ``crm up`` starts its services
(``shared.processes``), with a generated config (fresh data dir, secrets
and token issuer), and are driven by one ``ClusterRpcProxy`` keeping the same number
of calls in flight, so ``register_vs_noop`` is the share of the framework's
own rate that ``register`` keeps once validation, encryption, the store,
the relay and the projection are added.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from shared.auth import issue_token
from shared.bench.store_figures import BenchError, Phase
from shared.bench.workload import Sizes
from shared.discovery import ServiceSpec, installed_services, service_spec
from shared.processes import ServiceProcess, stop_processes, write_service_config
from shared.service_tokens import issue_service_token
from shared.token_keys import PUBLIC_KEY_SETTING, public_keys_text

NOOP = ServiceSpec("bench_noop", "shared.bench.noop_service:NoopService")
READY_TIMEOUT_S = 60.0
READY_POLL_TIMEOUT_S = 2
READY_POLL_INTERVAL_S = 0.2
CALL_TIMEOUT_S = 30
VISIBLE_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 60.0
SETTLE_POLL_S = 0.01
WARM_CALLS = 50
STOP_GRACE_S = 10.0
TOKEN_ACTOR, TOKEN_TTL_S = "crm-bench", 3600


def check_alive(service: ServiceProcess) -> None:
    """A service that died explains a failure better than the failure itself: raise with its log."""
    code = service.exited()
    if code is not None:
        raise BenchError(f"service {service.name} exited with code {code}:\n{service.log_tail()}")


@dataclass(frozen=True)
class Cluster:
    """The services the bench starts: their shared config, the bench's own token issuer, and its token."""

    config: dict[str, Any]
    issuer: Ed25519PrivateKey
    token: str

    def config_for(self, spec: ServiceSpec) -> dict[str, Any]:
        """The config of ``spec``'s service: the shared one with the service's own token."""
        return {**self.config, "CRM_SERVICE_TOKEN": issue_service_token(self.issuer, spec)}


def new_cluster(amqp_uri: str, data_dir: Path, role: str, **extra_config: Any) -> Cluster:
    """A fresh data dir, master key and token issuer; the bench calls as ``role``."""
    issuer = Ed25519PrivateKey.generate()
    config = {"AMQP_URI": amqp_uri, "CRM_DATA_DIR": str(data_dir),
              "CRM_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
              PUBLIC_KEY_SETTING: public_keys_text((issuer.public_key(),)), **extra_config}
    token = issue_token(issuer, role, TOKEN_ACTOR, list(installed_services()), ttl_seconds=TOKEN_TTL_S)
    return Cluster(config, issuer, token)


def start_service(spec: ServiceSpec, config: dict[str, Any], workdir: Path) -> ServiceProcess:
    """Start ``spec``'s class with ``config``; its config file and log are kept in ``workdir``."""
    service = ServiceProcess(spec.name, spec.service_class, write_service_config(workdir, spec.name, config),
                             workdir / f"{spec.name}.log")
    service.start()
    return service


def wait_ready(cluster: Cluster, services: list[ServiceProcess], timeout: float = READY_TIMEOUT_S) -> None:
    """Poll each service's ``health()`` until it answers; fail with its log after ``timeout``.

    A call to a service not yet listening is refused at once (``UnknownService``);
    the amqp library then warns about the broker's late confirm, which is noise here.
    """
    deadline = time.monotonic() + timeout
    with _quiet_logger("amqp"), ClusterRpcProxy(cluster.config, context_data={"authorization": cluster.token},
                                                timeout=READY_POLL_TIMEOUT_S) as proxy:
        for service in services:
            while True:
                check_alive(service)
                try:
                    getattr(proxy, service.name).health()
                    break
                except (UnknownService, RpcTimeout):
                    if time.monotonic() > deadline:
                        raise BenchError(f"service {service.name} did not answer health() within {timeout:.0f}s:\n"
                                         f"{service.log_tail()}") from None
                    time.sleep(READY_POLL_INTERVAL_S)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def drive(call: Callable[[], Any], seconds: float, in_flight: int) -> tuple[int, float]:
    """Keep ``in_flight`` calls outstanding for ``seconds``; (completed calls, elapsed seconds).

    Every reply is awaited, so a failing call raises instead of counting.
    """
    pending: deque = deque()
    completed = 0
    began = time.perf_counter()
    stop_at = began + seconds
    while True:
        while len(pending) < in_flight and time.perf_counter() < stop_at:
            pending.append(call())
        if not pending:
            break
        pending.popleft().result()
        completed += 1
    return completed, time.perf_counter() - began


def registration(number: int) -> dict[str, Any]:
    """A valid ``register`` payload with a phone no other call of this run uses."""
    return {"name": f"Bench Customer {number}", "phone": f"139{number:08d}", "email": f"bench{number}@example.com",
            "birthday": "1985-03-08", "tier": "general", "tags": ["bench"], "consents": ["callbacks"]}


def wait_settled(proxy: Any, service: str, timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Seconds until ``service`` has relayed and projected all it logged."""
    began = time.perf_counter()
    while True:
        health = getattr(proxy, service).health()
        if health["relay_backlog"] == 0 and all(p["lag"] == 0 for p in health["projections"].values()):
            return time.perf_counter() - began
        if time.perf_counter() - began > timeout:
            raise BenchError(f"{service} did not catch up within {timeout:.0f}s: {health}")
        time.sleep(SETTLE_POLL_S)


def throughput(proxy: Any, sizes: Sizes, numbers: Iterator[int], tick: Callable[[int], None]) -> dict[str, Any]:
    """No-op and register rates, taking turns so drift in the machine hits both alike.

    A register slice ends when the relay and the projection have caught up
    with it, so the rate is sustained, and background work left over from
    it does not slow the next no-op slice.
    """
    noop = lambda: proxy.bench_noop.ping.call_async()  # noqa: E731
    register = lambda: proxy.customers.register.call_async(**registration(next(numbers)))  # noqa: E731
    for warm in (noop, register):
        for reply in [warm() for _call in range(WARM_CALLS)]:
            reply.result()
    wait_settled(proxy, "customers")
    slice_s = sizes.rpc_seconds / sizes.rpc_rounds
    calls = {"noop": 0, "register": 0}
    seconds = {"noop": 0.0, "register": 0.0, "settle": 0.0}
    for _round in range(sizes.rpc_rounds):
        for name, call in (("noop", noop), ("register", register)):
            completed, spent = drive(call, slice_s, sizes.rpc_in_flight)
            calls[name] += completed
            seconds[name] += spent
            if name == "register":
                seconds["settle"] += wait_settled(proxy, "customers")
            tick(1)
    noop_rate = calls["noop"] / seconds["noop"]
    register_rate = calls["register"] / (seconds["register"] + seconds["settle"])
    return {"noop_rpc_per_s": noop_rate, "register_rpc_per_s": register_rate,
            "register_vs_noop": register_rate / noop_rate,
            "register_rpc_replied_per_s": calls["register"] / seconds["register"],
            "register_settle_s": seconds["settle"],
            "noop_rpc_calls": calls["noop"], "register_rpc_calls": calls["register"],
            "rpc_in_flight": sizes.rpc_in_flight}


def time_to_visible(proxy: Any, number: int) -> float:
    """Milliseconds from sending ``register`` to ``find(phone=...)`` returning the customer."""
    payload = registration(number)
    began = time.perf_counter()
    proxy.customers.register(**payload)
    deadline = began + VISIBLE_TIMEOUT_S
    while proxy.customers.find(phone=payload["phone"])["total"] < 1:
        if time.perf_counter() > deadline:
            raise BenchError(f"customer {payload['phone']} not visible in find() after {VISIBLE_TIMEOUT_S:.0f}s")
    return (time.perf_counter() - began) * 1000


def latency(proxy: Any, samples: int, numbers: Iterator[int], tick: Callable[[int], None]) -> dict[str, Any]:
    times = []
    for _sample in range(samples):
        times.append(time_to_visible(proxy, next(numbers)))
        tick(1)
    return {"register_to_visible_ms_p50": percentile(times, 50), "register_to_visible_ms_p99": percentile(times, 99),
            "register_to_visible_samples": samples}


def percentile(values: list[float], rank: float) -> float:
    """Nearest-rank percentile: the smallest value with ``rank`` % of values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(rank / 100 * len(ordered)) - 1, 0)]


@contextlib.contextmanager
def serving(cluster: Cluster, workdir: Path, services: list[tuple[ServiceSpec, dict[str, Any]]], phase: Phase,
            title: str, started: list[ServiceProcess] | None = None,
            ready_timeout: float = READY_TIMEOUT_S) -> Iterator[Any]:
    """Start ``services`` (spec, config), yield a proxy with the cluster's token, stop them whatever happens.

    Each service is checked (with its log) before returning or re-raising.
    ``started``, if given, receives the service processes (to read their
    memory, say); ``ready_timeout`` is how long they may take to answer
    (a service starting on a large log applies it first).
    """
    started = [] if started is None else started
    try:
        starting = phase(f"{title}: start services", 1)
        for spec, config in services:
            started.append(start_service(spec, config, workdir))
        wait_ready(cluster, started, ready_timeout)
        starting(1)
        with ClusterRpcProxy(cluster.config, context_data={"authorization": cluster.token},
                             timeout=CALL_TIMEOUT_S) as proxy:
            yield proxy
        for service in started:
            check_alive(service)
    except BaseException:
        for service in started:
            check_alive(service)
        raise
    finally:
        stop_processes(started, STOP_GRACE_S)


def rpc_figures(amqp_uri: str, workdir: Path, sizes: Sizes, phase: Phase) -> dict[str, Any]:
    """Start both services, measure, and stop them whatever happens (Ctrl-C included)."""
    cluster = new_cluster(amqp_uri, workdir / "data", "service")
    customers = service_spec("customers")
    with serving(cluster, workdir, [(customers, cluster.config_for(customers)), (NOOP, {"AMQP_URI": amqp_uri})],
                 phase, "RPC") as proxy:
        numbers = itertools.count(1)
        figures = throughput(proxy, sizes, numbers, phase("RPC: no-op vs register", 2 * sizes.rpc_rounds))
        figures.update(latency(proxy, sizes.latency_samples, numbers,
                               phase("RPC: register → find()", sizes.latency_samples)))
    return figures
