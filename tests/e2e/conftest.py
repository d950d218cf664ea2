"""Fault tests get a virtual host of their own per test (faults close its connections) and run in two deployments."""

from __future__ import annotations

import uuid
from typing import Callable

import pytest

from tests.support import private_vhost, service_config


@pytest.fixture
def fault_vhost():
    with private_vhost(f"crm-fault-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


@pytest.fixture(params=["one-replica-sqlite", "two-replicas-postgresql"])
def deployment(request, tmp_path) -> Callable[[str], tuple[dict, int]]:
    """``deploy(amqp_uri)`` → the services' config and how many replicas of each run."""
    if request.param == "one-replica-sqlite":
        return lambda amqp_uri: (service_config(tmp_path, amqp_uri), 1)  # SQLite stores in tmp_path
    databases = request.getfixturevalue("postgres_url_factory")
    urls = {"customers": databases(), "complaints": databases()}
    return lambda amqp_uri: (service_config(tmp_path, amqp_uri, **urls), 2)


from tests.integration.conftest import postgres_url_factory  # noqa: E402,F401 - shared with the fault tests
