"""Broker faults confined to one virtual host, so a fault test disturbs no other test on the broker.

RabbitMQ's management API closes a vhost's connections and, with a
connection limit of zero, refuses new ones: to the services in that vhost
this is a broker that went away and came back.
"""

from __future__ import annotations

import contextlib
from typing import Iterator
from urllib.parse import quote, urlsplit

import requests

from tests.support import AMQP_URI, MANAGEMENT_URL, wait_for

_PARTS = urlsplit(AMQP_URI)
_AUTH = (_PARTS.username or "guest", _PARTS.password or "guest")
_API = f"{MANAGEMENT_URL}/api"


def vhost_of(amqp_uri: str) -> str:
    return quote(urlsplit(amqp_uri).path.lstrip("/") or "/", safe="")


def connections(vhost: str) -> list[dict]:
    response = requests.get(f"{_API}/vhosts/{vhost}/connections", auth=_AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


def close_connections(vhost: str) -> int:
    """Close every client connection of the vhost, as a broker restart would; how many there were."""
    open_now = connections(vhost)
    for connection in open_now:
        requests.delete(f"{_API}/connections/{quote(connection['name'], safe='')}", auth=_AUTH, timeout=10,
                        headers={"X-Reason": "fault test: broker outage"})
    return len(open_now)


@contextlib.contextmanager
def outage(amqp_uri: str) -> Iterator[None]:
    """The broker is away for the vhost while the block runs: connections closed, new ones refused."""
    vhost = vhost_of(amqp_uri)
    limit = f"{_API}/vhost-limits/{vhost}/max-connections"
    requests.put(limit, json={"value": 0}, auth=_AUTH, timeout=10).raise_for_status()
    try:
        # The management API lists a closed connection for a moment longer.
        wait_for(lambda: close_connections(vhost) == 0, what="the vhost's connections to close")
        yield
    finally:
        requests.delete(limit, auth=_AUTH, timeout=10)


def queues(vhost: str) -> list[str]:
    response = requests.get(f"{_API}/queues/{vhost}", auth=_AUTH, timeout=10)
    response.raise_for_status()
    return [queue["name"] for queue in response.json()]


def messages_in(vhost: str, queue: str) -> int:
    """Messages in ``queue``, ready or delivered and not yet acknowledged."""
    response = requests.get(f"{_API}/queues/{vhost}/{quote(queue, safe='')}", auth=_AUTH, timeout=10)
    response.raise_for_status()
    return response.json().get("messages", 0)
