"""The log-state gauges are ``health()`` as Prometheus sees it."""

from __future__ import annotations

from types import SimpleNamespace

from shared.metrics import _LogState


def test_refused_events_are_a_gauge_per_consumer_and_upstream():
    view = {"lag": 0, "positions": {"customers": 7}, "stalled": {},
            "refused": {"customers": {"count": 2, "last_reason": "bad signature", "last_event_id": "e-9"}}}
    health = {"log_position": 3, "relay_backlog": 0, "dead_letters": 0,
              "projections": {"complaints.customers": view, "complaints.list": {**view, "refused": {}}},
              "reactions": {}}
    provider = SimpleNamespace(health=lambda: health)

    families = {family.name: family for family in _LogState("complaints", lambda: provider).collect()}

    refused = {sample.labels["consumer"]: sample.value for sample in families["crm_consumer_refused_events"].samples}
    assert refused == {"complaints.customers": 2, "complaints.list": 0}
