"""Helpers for tests that run real services against the real broker."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import socket
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg2
import pytest
import requests

from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import issue_token
from shared.cli.checks import check_broker
from shared.cli.rpc import redact
from shared.config import load_settings, owner_url_key
from shared.discovery import installed_services
from shared.ed25519_text import new_private_key_text, private_key_from_text, public_key_text
from shared.event_log import EventLog
from shared.signing import EventSigner
from shared.signing_keys import SERVICE_KEYS, signing_key_setting
from shared.service_migration import migrate_service
from shared.token_keys import PUBLIC_KEY_SETTING, public_keys_text
from tests.postgres_roles import owner_url

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("CRM_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")
POSTGRES_ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ISSUER_KEY = Ed25519PrivateKey.generate()  # the token issuer's key pair, one per test session
MASTER_KEY = secrets.token_bytes(32)
PROBE_TIMEOUT_SECONDS = 3.0
SIGNING_KEYS: dict[str, str] = {}  # service -> its private key for this test session, made on first use


def broker_problem(amqp_uri: str = AMQP_URI) -> str | None:
    """Why no RabbitMQ takes connections at ``amqp_uri``, with the fix, in one line; ``None`` if it does."""
    broker = check_broker(amqp_uri, PROBE_TIMEOUT_SECONDS)
    return None if broker.status == "ok" else f"{broker.detail}: {broker.fix}"


def management_problem(management_url: str = MANAGEMENT_URL) -> str | None:
    """Why nothing listens for the management API at ``management_url``, with the fix; ``None`` if it does."""
    parts = urlsplit(management_url)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), PROBE_TIMEOUT_SECONDS).close()
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)  # eventlet names it ECONNREFUSED
        return (f"RabbitMQ's management API is not reachable at {management_url} ({reason}): "
                f"enable it with `rabbitmq-plugins enable rabbitmq_management`")
    return None


def postgres_unreachable(url: str, error: Exception) -> str:
    """The one line a test fails with when the PostgreSQL server at ``url`` refuses: what, and how to fix it."""
    return (f"PostgreSQL is not reachable at {redact(url)} ({' '.join(str(error).split())}): start it with "
            f"`pg_ctlcluster <version> main start` (or `docker compose up -d postgres`), or set "
            f"CRM_TEST_POSTGRES_URL to a server where the tests may create databases and roles")


@contextlib.contextmanager
def admin_cursor(database_url: str | None = None) -> Iterator[Any]:
    """A cursor in autocommit as the administrator of ``CRM_TEST_POSTGRES_URL``; no server fails the test in one line.

    On the administrator's own database, or on ``database_url``'s database.
    """
    url = POSTGRES_ADMIN_URL
    if database_url is not None:
        url = urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=urlsplit(database_url).path))
    try:
        admin = psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError as error:
        pytest.fail(postgres_unreachable(POSTGRES_ADMIN_URL, error), pytrace=False)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            yield cursor
    finally:
        admin.close()


@contextlib.contextmanager
def private_vhost(name: str) -> Iterator[str]:
    """Create a vhost through the management API, yield its AMQP URI, then delete it.

    Without a broker or its management API the test fails with the one-line
    fix, instead of a connection error deep in a fixture.
    """
    problem = broker_problem() or management_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
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
    """A nameko config with the session's secrets, a service token, one database URL per service, and signing keys.

    The installed services and those given a database each get their own
    private key and everyone's public keys, so services started with this
    config check each other's events as in production. A PostgreSQL
    database comes with its owner's URL, which ``running`` migrates it with.
    """
    config = {"AMQP_URI": amqp_uri, "CRM_DATA_DIR": str(data_dir),
              "CRM_MASTER_KEY": base64.b64encode(MASTER_KEY).decode(),
              PUBLIC_KEY_SETTING: public_keys_text((ISSUER_KEY.public_key(),)),
              "CRM_SERVICE_TOKEN": token("service", "test-services")}
    for service, url in database_urls.items():
        config[f"CRM_{service.upper()}_DATABASE_URL"] = url
        if owner_url(url) != url:
            config[owner_url_key(service)] = owner_url(url)
    services = sorted({*installed_services(), *database_urls})
    config[SERVICE_KEYS] = {service: public_key_text(signer(service).public_key) for service in services}
    config.update({signing_key_setting(service): signing_key(service) for service in services})
    return config


def signing_key(service: str) -> str:
    """``service``'s private key in this test session (base64)."""
    if service not in SIGNING_KEYS:
        SIGNING_KEYS[service] = new_private_key_text()
    return SIGNING_KEYS[service]


def signer(service: str) -> EventSigner:
    """What ``service`` signs its events with in this session: a store of a test signs as that service."""
    return EventSigner(service, private_key_from_text(signing_key(service)))


def token(role: str, actor: str = "tester", ttl_seconds: int = 3600) -> str:
    """A token of the session's issuer, good for every installed service."""
    return issue_token(ISSUER_KEY, role, actor, list(installed_services()), ttl_seconds)


def migrated_by_owner(service_cls: type, config: dict[str, Any]) -> None:
    """Bring the service's database to head as its owner, where the config names one (as `crm up` does)."""
    settings = load_settings(config)
    if settings.owner_database_url(service_cls.name):
        migrate_service(settings, service_cls.name, service_cls)


@contextlib.contextmanager
def running(service_cls: type, config: dict[str, Any]) -> Iterator[ServiceContainer]:
    """The service started, its database first migrated by the owner where the config names one (as `crm up`)."""
    migrated_by_owner(service_cls, config)
    container = ServiceContainer(service_cls, config)
    container.start()
    try:
        yield container
    finally:
        container.stop()


def event_log(container: ServiceContainer) -> EventLog:
    """The ``EventLog`` of a running service container: its store, keys and consumers."""
    return next(dependency for dependency in container.dependencies if isinstance(dependency, EventLog))


@contextlib.contextmanager
def rpc_as(config: dict[str, Any], role: str | None, actor: str = "tester", raw_token: str | None = None,
           timeout: float = 30):
    """A cluster proxy whose calls carry a token for ``role`` (or ``raw_token``, or none)."""
    context = {}
    if raw_token is not None:
        context["authorization"] = raw_token
    elif role is not None:
        context["authorization"] = token(role, actor)
    with ClusterRpcProxy(config, context_data=context, timeout=timeout) as proxy:
        yield proxy


def call(config: dict[str, Any], role: str, method: str, *args: Any, service: str, actor: str = "tester",
         **kwargs: Any) -> Any:
    """``service.method(*args, **kwargs)`` over RPC with a token for ``role`` held by ``actor``."""
    with rpc_as(config, role, actor=actor) as proxy:
        return getattr(proxy[service], method)(*args, **kwargs)


def remote_error(config: dict[str, Any], role: str, method: str, *args: Any, **kwargs: Any) -> RemoteError:
    """The ``RemoteError`` the call raises (the test fails if it answers)."""
    with pytest.raises(RemoteError) as error:
        call(config, role, method, *args, **kwargs)
    return error.value


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
