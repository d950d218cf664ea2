"""Prometheus metrics of a service, on an HTTP port from its config.

Two kinds of figures:

* **per call**, counted as workers finish (nameko calls every dependency's
  ``worker_setup`` and ``worker_result``): calls and errors by method, and
  a latency histogram;
* **state**, read from ``EventLog.health()`` each time Prometheus scrapes:
  log head, relay backlog, dead letters, and each consumer's position, lag,
  stalled events and events refused as not genuine. Reading at scrape time keeps the hot path free of
  bookkeeping and the figures exactly what ``crm health`` shows.

``CRM_METRICS_PORT`` (config or environment) turns it on; each replica of a
service needs its own port on a host (``crm up`` hands them out). Each
container has its own registry, so several services in one process (tests)
never mix their figures.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Iterator, Mapping

from marshmallow import Schema, fields, validate
from nameko.extensions import DependencyProvider
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.event_log import EventLog
from shared.validation import load

log = logging.getLogger(__name__)

PORT_KEY = "CRM_METRICS_PORT"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _MetricsConfig(Schema):
    CRM_METRICS_PORT = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=65535))


def metrics_port(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> int | None:
    """The port to serve metrics on, or ``None`` when metrics are off; ``ValidationError`` names the key."""
    environ = os.environ if environ is None else environ
    value = config.get(PORT_KEY, environ.get(PORT_KEY))
    return load(_MetricsConfig(), {PORT_KEY: value if value not in ("", None) else None})[PORT_KEY]


class Metrics(DependencyProvider):
    """Counts every worker of the service and serves the figures for Prometheus."""

    def setup(self) -> None:
        self.port = metrics_port(self.container.config)
        self.registry = CollectorRegistry()
        service = self.container.service_name
        self.calls = Counter("crm_calls", "Workers run, by entrypoint method and outcome (ok or the error type)",
                             ["service", "method", "outcome"], registry=self.registry)
        self.latency = Histogram("crm_call_seconds", "Time from a worker's start to its result",
                                 ["service", "method"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_LogState(service, self._event_log))
        self._started: dict[int, float] = {}
        self.server = None

    def start(self) -> None:
        if self.port is not None:
            self.server, _thread = start_http_server(self.port, registry=self.registry)
            log.info("%s serves metrics on port %d", self.container.service_name, self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def kill(self) -> None:
        self.stop()

    def worker_setup(self, worker_ctx) -> None:
        self._started[id(worker_ctx)] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        started = self._started.pop(id(worker_ctx), None)
        method = worker_ctx.entrypoint.method_name
        service = self.container.service_name
        outcome = "ok" if exc_info is None else exc_info[0].__name__
        self.calls.labels(service, method, outcome).inc()
        if started is not None:
            self.latency.labels(service, method).observe(time.perf_counter() - started)

    def _event_log(self) -> EventLog | None:
        return next((dependency for dependency in self.container.dependencies
                     if isinstance(dependency, EventLog)), None)


class _LogState(Collector):
    """The service's ``health()`` as gauges, read at scrape time."""

    def __init__(self, service: str, event_log):
        self.service = service
        self.event_log = event_log

    def collect(self) -> Iterator[GaugeMetricFamily]:
        provider = self.event_log()
        if provider is None:
            return
        health = provider.health()
        for name, key, text in (("crm_log_head_position", "log_position", "Position of the last event in the log"),
                                ("crm_relay_backlog", "relay_backlog", "Logged events the broker has not confirmed"),
                                ("crm_dead_letters", "dead_letters", "Parked events waiting for a retry")):
            gauge = GaugeMetricFamily(name, text, labels=["service"])
            gauge.add_metric([self.service], health[key])
            yield gauge
        yield from self._consumers(health)

    def _consumers(self, health: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
        labels = ["service", "consumer", "upstream"]
        position = GaugeMetricFamily("crm_consumer_position", "Last upstream position a consumer applied", labels=labels)
        lag = GaugeMetricFamily("crm_consumer_lag_events", "Upstream events a consumer has not applied yet",
                                labels=labels)
        lag_seconds = GaugeMetricFamily("crm_consumer_lag_seconds",
                                        "Producer time between the upstream's head and the last event applied",
                                        labels=labels)
        stalled = GaugeMetricFamily("crm_consumer_stalled", "1 while a consumer retries an event it may not park",
                                    labels=labels)
        refused = GaugeMetricFamily("crm_consumer_refused_events",
                                    "Upstream events a consumer refused as not genuine since the service started",
                                    labels=labels)
        for kind in ("projections", "reactions"):
            for consumer, view in health.get(kind, {}).items():
                for upstream, applied in view["positions"].items():
                    behind = view["upstreams"][upstream]
                    if behind["lag_events"] is not None:
                        lag.add_metric([self.service, consumer, upstream], behind["lag_events"])
                    if behind["lag_seconds"] is not None:
                        lag_seconds.add_metric([self.service, consumer, upstream], behind["lag_seconds"])
                    position.add_metric([self.service, consumer, upstream], applied)
                    stalled.add_metric([self.service, consumer, upstream], 1 if upstream in view["stalled"] else 0)
                    refused.add_metric([self.service, consumer, upstream],
                                       view["refused"].get(upstream, {}).get("count", 0))
        yield from (position, lag, lag_seconds, stalled, refused)
