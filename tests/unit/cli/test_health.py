"""``crm health``: what it makes of a service's answer."""

from __future__ import annotations

from shared.cli.health import refused_upstreams, stalled_consumers


def test_health_names_projections_that_refuse_a_replaced_upstream_log():
    answer = {"projections": {"complaints.customers": {"lag": 0, "forked": {"customers": "the log was replaced"}},
                              "complaints.list": {"lag": 0, "forked": {}}}}
    assert refused_upstreams(answer) == \
        "complaints.customers refuses customers (its log was replaced: crm rebuild)"
    assert refused_upstreams({"projections": {"complaints.list": {"lag": 0, "forked": {}}}}) == ""
    assert refused_upstreams({"log_position": 3}) == ""


def test_health_names_consumers_retrying_an_event_they_may_not_park():
    answer = {"projections": {"complaints.list": {"lag": 0, "forked": {}, "stalled": {}}},
              "reactions": {"data-keys.erasure": {"lag": 1, "forked": {}, "stalled": {"customers": {
                  "position": 7, "type": "CustomerErased", "attempts": 4, "error": "OperationalError: disk full",
                  "retry_in_seconds": 2.0}}}}}
    assert stalled_consumers(answer) == ("data-keys.erasure retries customers CustomerErased at 7 "
                                         "(4 attempts: OperationalError: disk full)")
    assert stalled_consumers({"projections": {}, "reactions": {}}) == ""
