"""A service's Prometheus metrics, scraped over HTTP while it runs on the real broker and databases."""

from __future__ import annotations

import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.customers.service import CustomersService
from shared.errors import ValidationError
from shared.metrics import metrics_port
from tests.support import rpc_as, running, service_config, wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted({"service": "customers", **labels}.items()))))


def test_calls_errors_latency_and_log_state_are_exposed(tmp_path, database_url, amqp_uri):
    port = free_port()
    config = {**service_config(tmp_path, amqp_uri, customers=database_url), "CRM_METRICS_PORT": port}
    with running(CustomersService, config), rpc_as(config, "agent") as proxy:
        for number in range(3):
            proxy.customers.register(name=f"客户{number}", phone=f"1380000000{number}")
        with pytest.raises(Exception):
            proxy.customers.register(name="x", phone="not a phone")
        # A worker's figures are counted once its reply is on the way: wait for the refused call's too.
        samples = wait_for(lambda: (found := scrape(port))
                           and value(found, "crm_calls_total", method="register", outcome="ValidationError")
                           and value(found, "crm_consumer_lag_events", consumer="customers.directory",
                                     upstream="customers") == 0 and found,
                           what="the refused call to be counted and the directory to catch up")

    assert value(samples, "crm_calls_total", method="register", outcome="ok") == 3
    assert value(samples, "crm_calls_total", method="register", outcome="ValidationError") == 1
    assert value(samples, "crm_call_seconds_count", method="register") == 4
    assert value(samples, "crm_log_head_position") == 3
    assert value(samples, "crm_dead_letters") == 0
    assert value(samples, "crm_consumer_position", consumer="customers.directory", upstream="customers") == 3
    assert value(samples, "crm_consumer_stalled", consumer="data-keys.erasure", upstream="customers") == 0
    assert value(samples, "crm_consumer_refused_events", consumer="data-keys.erasure", upstream="customers") == 0


def test_the_metrics_port_is_validated_naming_the_setting():
    assert metrics_port({}, {}) is None
    assert metrics_port({"CRM_METRICS_PORT": 9400}, {}) == 9400
    assert metrics_port({}, {"CRM_METRICS_PORT": "9401"}) == 9401
    with pytest.raises(ValidationError) as refused:
        metrics_port({"CRM_METRICS_PORT": 70000}, {})
    assert "CRM_METRICS_PORT" in refused.value.fields
