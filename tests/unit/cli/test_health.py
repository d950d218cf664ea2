"""``crm health``: what it makes of a service's answer."""

from __future__ import annotations

from shared.cli.health import refused_upstreams


def test_health_names_projections_that_refuse_a_replaced_upstream_log():
    answer = {"projections": {"complaints.customers": {"lag": 0, "forked": {"customers": "the log was replaced"}},
                              "complaints.list": {"lag": 0, "forked": {}}}}
    assert refused_upstreams(answer) == \
        "complaints.customers refuses customers (its log was replaced: crm rebuild)"
    assert refused_upstreams({"projections": {"complaints.list": {"lag": 0, "forked": {}}}}) == ""
    assert refused_upstreams({"log_position": 3}) == ""
