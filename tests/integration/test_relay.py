"""The relay on the real RabbitMQ and real databases: at least once, once per service.

Every test uses its own service name, so exchanges and queues never clash
with other runs; the fixture deletes them afterwards. Conditions are awaited
with a deadline (``wait_for``), never with a fixed sleep.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid

import eventlet
import pytest
from kombu import Connection, Queue
from nameko.events import event_handler
from nameko.standalone.events import get_event_exchange
from nameko.testing.services import entrypoint_waiter

from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from shared.leases import Lease
from shared.relay import PublishNotConfirmed, Relay
from tests.support import AMQP_URI, running, signer, wait_for

CONTEXT = CommandContext("agent-1", "agent")
WAIT = 60  # seconds a condition may take before the test fails



# -- fixtures and helpers -------------------------------------------------------------

class Broker:
    """Declares consumer queues on the test's exchange and deletes them afterwards."""

    def __init__(self, service: str):
        self.service = service
        self.connection = Connection(AMQP_URI)
        self.queues: list[str] = []

    def bind_queue(self, **arguments) -> str:
        """A queue that receives every event of the service (routing key ``#``)."""
        name = f"{self.service}.all-{len(self.queues)}"
        return self.declare(name, "#", **arguments)

    def declare(self, name: str, routing_key: str, **arguments) -> str:
        self.queues.append(name)
        queue = Queue(name, exchange=get_event_exchange(self.service, {}), routing_key=routing_key,
                      durable=False, queue_arguments=arguments or None)
        queue(self.connection.default_channel).declare()
        return name

    def message_count(self, queue: str) -> int:
        """Exact once ``publish_pending`` returned: a confirmed message is already enqueued."""
        return self.connection.default_channel.queue_declare(queue, passive=True).message_count

    def positions(self, queue: str, count: int) -> list[int]:
        """The ``position`` of each of the next ``count`` messages, in arrival order."""
        received: list[int] = []
        with Connection(AMQP_URI) as connection, connection.Consumer(
                Queue(queue, no_declare=True), accept=["json"], no_ack=True,
                callbacks=[lambda body, _message: received.append(body["position"])]):
            while len(received) < count:
                connection.drain_events(timeout=WAIT)  # raises after WAIT seconds of silence
        return received

    def cleanup(self) -> None:
        """On a new connection: a failed test may have left the other one's channel closed."""
        self.connection.collect()
        with Connection(AMQP_URI) as connection:
            channel = connection.channel()
            for queue in self.queues:
                channel.queue_delete(queue)
            channel.exchange_delete(f"{self.service}.events")


@pytest.fixture
def service() -> str:
    return f"relaytest_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def broker(service):
    broker = Broker(service)
    yield broker
    broker.cleanup()


@pytest.fixture
def store(database_url, service):
    store = EventStore.open(database_url, signer(service))
    yield store
    store.engine.dispose()


def append(store: EventStore, count: int, event_type: str = "SomethingHappened") -> None:
    """``count`` events in commands of up to 500 events, each on a new stream."""
    for start in range(0, count, 500):
        size = min(500, count - start)
        store.append(f"thing-{uuid.uuid4()}", [NewEvent(event_type, {"n": start + i, "name": "张三"})
                                               for i in range(size)], 0, CONTEXT)


def relay_for(store: EventStore, owner: str = "replica-a", clock=time.time, **options) -> Relay:
    return Relay(store, AMQP_URI, Lease(store.engine, f"{store.service}.relay", owner, clock=clock), **options)


class Running:
    """``relay.run`` in a greenthread, as ``EventLog`` runs it; stopped on exit."""

    def __init__(self, relay: Relay):
        self.relay = relay
        self._stop = threading.Event()
        self._thread = eventlet.spawn(relay.run, self._stop)

    def stop(self) -> None:
        self._stop.set()
        self.relay.wake()
        self._thread.wait()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


# -- nameko receives what the log holds --------------------------------------------------

def test_a_nameko_event_handler_receives_the_stored_envelope(store, broker, service):
    received = []

    class Listener:
        name = f"{service}_listener"

        @event_handler(service, "SomethingHappened")
        def handle(self, payload):
            received.append(payload)

    broker.queues.append(f"evt-{service}-SomethingHappened--{Listener.name}.handle")
    relay = relay_for(store)
    with running(Listener, {"AMQP_URI": AMQP_URI}) as container:
        append(store, 1)
        with entrypoint_waiter(container, "handle", timeout=WAIT):
            assert relay.publish_pending() == 1
    relay.close()
    assert received == [store.read_since(0)[0].to_dict()]
    assert relay.checkpoint() == 1 and relay.backlog() == 0


def test_events_are_routed_by_their_type(store, broker, service):
    queue = broker.bind_queue()
    routed = broker.declare(f"{service}.filed", "ComplaintFiled")
    append(store, 2, "ComplaintFiled")
    append(store, 3, "ComplaintAssigned")
    relay = relay_for(store)
    assert relay.publish_pending() == 5
    relay.close()
    assert broker.message_count(queue) == 5
    assert broker.positions(routed, 2) == [1, 2]


# -- the checkpoint ---------------------------------------------------------------------

def test_the_checkpoint_survives_a_restart_and_nothing_is_published_twice(store, broker, database_url):
    queue = broker.bind_queue()
    append(store, 1200)
    first = relay_for(store, batch_size=500)
    assert first.publish_pending() == 1200
    first.close()

    restarted = EventStore.open(database_url, store.signer)
    second = relay_for(restarted, owner="replica-b")
    assert second.checkpoint() == 1200 and second.backlog() == 0
    assert second.publish_pending() == 0
    append(restarted, 2)
    assert second.publish_pending() == 2
    second.close()
    restarted.engine.dispose()
    assert broker.message_count(queue) == 1202
    assert broker.positions(queue, 1202) == list(range(1, 1203))


def test_the_checkpoint_does_not_move_while_the_broker_has_not_confirmed(store, broker, monkeypatch):
    queue = broker.bind_queue()
    append(store, 3)
    relay = relay_for(store, confirm_timeout=0.5)
    monkeypatch.setattr(relay, "_on_ack", lambda _tag, _multiple: None)  # acks are lost
    with pytest.raises(PublishNotConfirmed, match="not confirmed"):
        relay.publish_pending()
    wait_for(lambda: broker.message_count(queue) == 3, what="the unconfirmed messages to arrive")
    assert relay.checkpoint() == 0 and relay.backlog() == 3

    monkeypatch.undo()  # acks arrive again: the batch is republished, then confirmed
    assert relay.publish_pending() == 3
    relay.close()
    assert relay.checkpoint() == 3
    assert sorted(broker.positions(queue, 6)) == [1, 1, 2, 2, 3, 3]


def test_a_nack_keeps_the_checkpoint_and_raises(store, broker):
    """A full queue with ``reject-publish`` makes RabbitMQ nack: a real broker refusal."""
    full = broker.bind_queue(**{"x-max-length": 1, "x-overflow": "reject-publish"})
    append(store, 3)
    relay = relay_for(store)
    with pytest.raises(PublishNotConfirmed, match="nacked"):
        relay.publish_pending()
    assert relay.checkpoint() == 0

    broker.connection.default_channel.queue_delete(full)
    assert relay.publish_pending() == 3
    relay.close()
    assert relay.checkpoint() == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_publishes_new_events_as_soon_as_an_append_wakes_it(store, broker):
    """Wired as ``EventLog`` wires it; the poll interval is an hour, so only the wake-up can work."""
    queue = broker.bind_queue()
    relay = relay_for(store, poll_seconds=3600)
    store.on_append(lambda _envelopes: relay.wake())
    with Running(relay):
        append(store, 3)
        wait_for(lambda: relay.checkpoint() == 3, timeout=WAIT, what="the first events")
        append(store, 2)  # the relay now idles in its hour-long wait
        wait_for(lambda: relay.checkpoint() == 5, timeout=WAIT, what="the woken relay")
    assert broker.positions(queue, 5) == [1, 2, 3, 4, 5]


# -- broken connections ----------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_event_arrives_when_the_connection_breaks_mid_run(store, broker, caplog):
    queue = broker.bind_queue()
    total = 10_000
    append(store, total)
    relay = relay_for(store)
    with caplog.at_level(logging.WARNING, logger="shared.relay"), Running(relay):
        broken_at = wait_for(lambda: relay.checkpoint() >= 1000 and relay.checkpoint(), timeout=WAIT,
                             interval=0.002, what="the relay to be publishing")
        # What a dead network does: the socket under the open connection stops working.
        relay._connection.connection.sock.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: relay.checkpoint() == total, timeout=WAIT, what="the relay to catch up")
    assert broken_at < total
    assert any("reconnecting" in record.getMessage() for record in caplog.records)
    count = broker.message_count(queue)
    positions = broker.positions(queue, count)
    assert set(positions) == set(range(1, total + 1))  # at least once; duplicates allowed
    assert count >= total


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl is not installed")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_relay_reconnects_after_the_broker_closes_its_connection(store, broker, service, caplog):
    queue = broker.bind_queue()
    append(store, 100)
    relay = relay_for(store, poll_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="shared.relay"), Running(relay):
        wait_for(lambda: relay.checkpoint() == 100, timeout=WAIT, what="the first events")
        _close_connection(f"{service}.relay")
        append(store, 100)
        relay.wake()
        wait_for(lambda: relay.checkpoint() == 200, timeout=WAIT, what="the relay to reconnect")
    assert any("CONNECTION_FORCED" in record.getMessage() for record in caplog.records)
    count = broker.message_count(queue)
    assert set(broker.positions(queue, count)) == set(range(1, 201))


def _close_connection(connection_name: str) -> None:
    """Have the broker close a client's connection, as an operator or a node restart would."""
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                             capture_output=True, text=True, timeout=WAIT, check=True).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines()
            if f'{{"connection_name","{connection_name}"}}' in line]
    assert pids, f"rabbitmqctl does not list {connection_name}:\n{listing}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "closed by test_relay"],
                       capture_output=True, timeout=WAIT, check=True)


# -- one relay per service ---------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_of_two_relays_on_one_database_only_the_lease_holder_publishes(store, broker, database_url,
                                                                      monkeypatch):
    queue = broker.bind_queue()
    clock = Clock()
    other_replica = EventStore.open(database_url, store.signer)
    a = relay_for(store, "replica-a", clock, poll_seconds=0.02)
    b = relay_for(other_replica, "replica-b", clock, poll_seconds=0.02)
    b_attempts: list[bool] = []
    acquire_b = b.lease.acquire
    monkeypatch.setattr(b.lease, "acquire", lambda: b_attempts.append(acquire_b()) or b_attempts[-1])
    assert a.lease.acquire()

    with Running(a) as running_a, Running(b):
        append(store, 300)
        append(other_replica, 300)
        wait_for(lambda: a.checkpoint() == 600, timeout=WAIT, what="replica a to publish")
        assert broker.message_count(queue) == 600
        assert b._connection is None and not any(b_attempts)

        # Replica a dies without releasing its lease (as on SIGKILL): b must wait for expiry.
        monkeypatch.setattr(a.lease, "release", lambda: None)
        running_a.stop()
        append(other_replica, 50)
        tries = len(b_attempts)
        wait_for(lambda: len(b_attempts) >= tries + 3, timeout=WAIT, what="replica b to try again")
        assert not any(b_attempts) and b.checkpoint() == 600

        clock.now += 10.001
        wait_for(lambda: b.checkpoint() == 650, timeout=WAIT, what="replica b to take over")
    other_replica.engine.dispose()
    assert broker.message_count(queue) == 650
    assert broker.positions(queue, 650) == list(range(1, 651))


def test_replicas_racing_for_a_free_lease_elect_exactly_one(store):
    """On PostgreSQL the greenthreads really interleave (psycogreen): the insert race happens."""
    leases = [Lease(store.engine, f"{store.service}.relay", f"replica-{i}") for i in range(12)]
    pool = eventlet.GreenPool()
    assert sum(pool.imap(lambda lease: lease.acquire(), leases)) == 1
    assert sum(lease.held for lease in leases) == 1
