"""contracts.client against a real nameko service on the real RabbitMQ.

The service (pika_fixture_service.py) runs in a subprocess under
``python -m nameko run``, with a per-run unique name so its queues and
exchanges do not clash with other runs; they are deleted afterwards.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pika
import pytest

from contracts.client import CrmClient, RemoteError

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
HERE = Path(__file__).resolve().parent



def _delete_broker_objects(queues: list[str], exchanges: list[str]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URI))
    try:
        channel = conn.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """Start the fixture service; yield its name once it answers RPC."""
    name = f"pika_fixture_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PIKA_FIXTURE_SERVICE": name}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nameko", "run", "pika_fixture_service:PikaFixtureService",
         "--broker", AMQP_URI],
        cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Requests sent before the service's queue exists are dropped, so
        # each probe has a short timeout and we retry until the deadline.
        deadline = time.monotonic() + 30
        with CrmClient(AMQP_URI, timeout=0.5) as probe:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"nameko run exited {proc.returncode}:\n{log.read().decode()}")
                try:
                    probe.call(name, "echo")
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _delete_broker_objects([f"rpc-{name}"], [f"{name}.events"])


@pytest.fixture
def client() -> Iterator[CrmClient]:
    with CrmClient(AMQP_URI, token="signed.token", timeout=10) as crm:
        yield crm


def test_call_passes_args_and_kwargs_and_returns_the_result(service: str,
                                                             client: CrmClient) -> None:
    result = client.call(service, "echo", 1, "二", [3], key={"nested": True}, other=None)
    assert result["args"] == [1, "二", [3]]
    assert result["kwargs"] == {"key": {"nested": True}, "other": None}


def test_token_arrives_as_authorization_context_data(service: str, client: CrmClient) -> None:
    assert client.call(service, "echo")["authorization"] == "signed.token"
    with CrmClient(AMQP_URI, timeout=10) as anonymous:
        assert anonymous.call(service, "echo")["authorization"] is None


def test_remote_exception_becomes_remote_error(service: str, client: CrmClient) -> None:
    with pytest.raises(RemoteError) as caught:
        client.call(service, "conflict", "stale expected_version 3, now 4")
    error = caught.value
    assert error.exc_type == "Conflict"
    assert error.value == "stale expected_version 3, now 4"
    assert error.args == ("stale expected_version 3, now 4",)
    assert str(error) == "Conflict stale expected_version 3, now 4"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.exc_type, copy.value, copy.args) == (error.exc_type, error.value, error.args)
    # The client stays usable after an error.
    assert client.call(service, "echo", "again")["args"] == ["again"]


def test_unknown_method_is_a_remote_error(service: str, client: CrmClient) -> None:
    with pytest.raises(RemoteError) as caught:
        client.call(service, "no_such_method")
    assert caught.value.exc_type == "MethodNotFound"


def test_unknown_service_times_out_quickly(client: CrmClient) -> None:
    client.timeout = 0.3
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"nobody_home_\w+\.anything"):
        client.call(f"nobody_home_{uuid.uuid4().hex[:6]}", "anything")
    assert time.monotonic() - started < 3


def test_subscribe_receives_only_bound_event_types(service: str, client: CrmClient) -> None:
    with client.subscribe(service, ["ThingHappened"]) as sub:
        client.call(service, "emit", "OtherThing", {"n": 0})
        client.call(service, "emit", "ThingHappened", {"n": 1, "text": "关怀"})
        # One queue, one publisher: had OtherThing been routed, it came first.
        assert sub.get(timeout=10) == {"n": 1, "text": "关怀"}


def test_named_queue_keeps_events_while_nobody_listens(service: str,
                                                       client: CrmClient) -> None:
    queue = f"{service}-durable-tap"
    try:
        client.subscribe(service, "Kept", queue_name=queue).close()
        client.call(service, "emit", "Kept", {"n": 1})
        client.call(service, "emit", "Kept", {"n": 2})
        with client.subscribe(service, "Kept", queue_name=queue) as sub:
            assert [event["n"] for event in (sub.get(timeout=10), sub.get(timeout=10))] == [1, 2]
    finally:
        _delete_broker_objects([queue], [])


def test_client_reconnects_after_the_connection_is_closed(service: str,
                                                          client: CrmClient) -> None:
    client.close()
    assert client.call(service, "echo", "back")["args"] == ["back"]
