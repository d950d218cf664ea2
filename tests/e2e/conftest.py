"""Fault tests get a virtual host of their own per test: faults are made by closing its connections."""

from __future__ import annotations

import uuid

import pytest

from tests.support import private_vhost


@pytest.fixture
def fault_vhost():
    with private_vhost(f"crm-fault-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


from tests.integration.conftest import postgres_url_factory  # noqa: E402,F401 - shared with the fault tests
