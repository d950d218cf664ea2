"""The log-state gauges are ``health()`` as Prometheus sees it."""

from __future__ import annotations

from types import SimpleNamespace

from shared.metrics import _LogState


def test_refused_events_are_a_gauge_per_consumer_and_upstream():
    behind = {"head": 9, "applied": 7, "lag_events": 2, "lag_seconds": 1.5, "since_last_applied_seconds": 0.2}
    view = {"lag": 2, "positions": {"customers": 7}, "upstreams": {"customers": behind}, "stalled": {},
            "refused": {"customers": {"count": 2, "last_reason": "bad signature", "last_event_id": "e-9"}}}
    health = {"log_position": 3, "relay_backlog": 0, "dead_letters": 0,
              "projections": {"complaints.customers": view, "complaints.list": {**view, "refused": {}}},
              "reactions": {}}
    provider = SimpleNamespace(health=lambda: health)

    families = {family.name: family for family in _LogState("complaints", lambda: provider).collect()}

    refused = {sample.labels["consumer"]: sample.value for sample in families["crm_consumer_refused_events"].samples}
    assert refused == {"complaints.customers": 2, "complaints.list": 0}
    lag = {sample.labels["consumer"]: sample.value for sample in families["crm_consumer_lag_events"].samples}
    lag_seconds = {sample.labels["upstream"]: sample.value for sample in families["crm_consumer_lag_seconds"].samples}
    assert lag == {"complaints.customers": 2, "complaints.list": 2} and lag_seconds == {"customers": 1.5}
