"""Helpers for tests that run real services against the real broker."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ClusterRpcProxy

from shared.auth import issue_token

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("CRM_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")
SECRET = secrets.token_bytes(32)
MASTER_KEY = secrets.token_bytes(32)


@contextlib.contextmanager
def private_vhost(name: str) -> Iterator[str]:
    """Create a vhost through the management API, yield its AMQP URI, then delete it."""
    parts = urlsplit(AMQP_URI)
    auth = (parts.username or "guest", parts.password or "guest")
    api = f"{MANAGEMENT_URL}/api"
    requests.put(f"{api}/vhosts/{quote(name, safe='')}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{api}/permissions/{quote(name, safe='')}/{auth[0]}", auth=auth, timeout=10,
                 json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    finally:
        requests.delete(f"{api}/vhosts/{quote(name, safe='')}", auth=auth, timeout=10)


def service_config(data_dir: Path, amqp_uri: str = AMQP_URI, **database_urls: str) -> dict[str, Any]:
    """A nameko config with fresh secrets and one database URL per service."""
    config = {"AMQP_URI": amqp_uri, "CRM_DATA_DIR": str(data_dir),
              "CRM_SECRET": base64.b64encode(SECRET).decode(),
              "CRM_MASTER_KEY": base64.b64encode(MASTER_KEY).decode()}
    for service, url in database_urls.items():
        config[f"CRM_{service.upper()}_DATABASE_URL"] = url
    return config


def token(role: str, actor: str = "tester", ttl_seconds: int = 3600) -> str:
    return issue_token(SECRET, role, actor, ttl_seconds)


@contextlib.contextmanager
def running(service_cls: type, config: dict[str, Any]) -> Iterator[ServiceContainer]:
    container = ServiceContainer(service_cls, config)
    container.start()
    try:
        yield container
    finally:
        container.stop()


@contextlib.contextmanager
def rpc_as(config: dict[str, Any], role: str | None, actor: str = "tester", raw_token: str | None = None):
    """A cluster proxy whose calls carry a token for ``role`` (or ``raw_token``, or none)."""
    context = {}
    if raw_token is not None:
        context["authorization"] = raw_token
    elif role is not None:
        context["authorization"] = token(role, actor)
    with ClusterRpcProxy(config, context_data=context, timeout=30) as proxy:
        yield proxy


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll until ``condition()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RecordedPhases:
    """A ``Phase`` that remembers each phase's total and the steps it was advanced by."""

    def __init__(self):
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = defaultdict(int)

    def __call__(self, description: str, total: int):
        self.totals[description] = total
        return lambda steps: self.done.__setitem__(description, self.done[description] + steps)
