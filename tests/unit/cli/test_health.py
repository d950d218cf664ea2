"""``crm health``: what it makes of a service's answer, and the token it asks with."""

from __future__ import annotations

import jwt
import pytest

from shared.auth import TokenVerifier, issue_token
from shared.cli import health
from shared.cli.health import refused_events, refused_upstreams, stalled_consumers
from tests.unit.cli import ISSUER_KEY, MASTER_KEY, PRIVATE_KEY, PUBLIC_KEY


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


def test_health_names_consumers_that_refused_events_that_are_not_genuine():
    answer = {"projections": {"complaints.customers": {"lag": 0, "refused": {"customers": {
        "count": 2, "last_reason": "bad signature", "last_event_id": "e-2"}}}, "complaints.list": {"refused": {}}}}
    assert refused_events(answer) == "complaints.customers refused 2 customers event(s) (last: bad signature)"
    assert refused_events({"projections": {"complaints.list": {"lag": 0}}}) == ""


# -- the token crm health sends when given none ----------------------------------------------

@pytest.fixture
def sent_tokens(monkeypatch):
    """The token each probe of ``crm health`` carried; every service answers."""
    sent = []
    monkeypatch.setattr(health, "probe_health",
                        lambda _amqp, token, service, _timeout: sent.append((service, token)) or (True, {}))
    return sent


def test_health_signs_a_short_lived_service_token_for_the_services_it_asks(invoke, sent_tokens):
    result = invoke("health", "customers", env={"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY, "CRM_MASTER_KEY": MASTER_KEY})
    assert result.exit_code == 0, result.output
    [(service, token)] = sent_tokens
    assert TokenVerifier([ISSUER_KEY.public_key()], service).verify(token).role == "service"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == ["customers"] and claims["exp"] - claims["iat"] == health.HEALTH_TOKEN_TTL_SECONDS


def test_health_without_the_issuer_key_sends_the_containers_service_token(invoke, sent_tokens):
    own = issue_token(ISSUER_KEY, "service", "customers", ["customers"])
    result = invoke("health", "customers", env={"CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": MASTER_KEY,
                                                "CRM_SERVICE_TOKEN": own})
    assert result.exit_code == 0, result.output
    assert sent_tokens == [("customers", own)]


def test_health_with_no_way_to_a_token_exits_2_naming_the_settings(invoke, sent_tokens):
    result = invoke("health", env={"CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": MASTER_KEY})
    assert result.exit_code == 2
    assert "CRM_TOKEN_PRIVATE_KEY" in result.stderr and "CRM_SERVICE_TOKEN" in result.stderr
    assert sent_tokens == []
