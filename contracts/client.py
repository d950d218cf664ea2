"""Framework-free CareCRM client: nameko 2.14 RPC and events over plain pika.

Callers that cannot (or should not) run nameko and eventlet — scripts, other
stacks, tests — still need to call the services and watch their events. This
module speaks nameko's AMQP wire protocol directly, with ``pika``'s
``BlockingConnection`` only:

* RPC request: published to the durable topic exchange ``nameko-rpc`` with
  routing key ``"<service>.<method>"``, JSON body ``{"args", "kwargs"}``,
  a ``correlation_id`` and ``reply_to`` set to the *routing key* the client's
  reply queue is bound with on ``nameko-rpc`` (nameko replies through that
  exchange, not to a queue name). Context data travels as ``nameko.<key>``
  headers; the signed token is ``nameko.authorization`` and the moment the
  client stops waiting is ``nameko.deadline_ms``. A command gets a fresh
  ``command_id`` when the caller gives none, so it runs at most once.
* RPC reply: ``{"result": ..., "error": null | {"exc_type", "exc_path",
  "exc_args", "value"}}``; an error becomes :class:`RemoteError`.
* Events: a service's events go to the durable topic exchange
  ``"<service>.events"`` with the event type as routing key.

The client is not thread-safe (neither is ``BlockingConnection``): use one
client per thread. It works with or without eventlet monkey patching.

Usage::

    with CrmClient(token=token) as crm:
        sub = crm.subscribe("complaints", ["ComplaintFiled"])  # bound now
        crm.call("complaints", "file", customer_id, channel="phone", ...)
        envelope = sub.get(timeout=5)
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from typing import Any, Iterable, Iterator

import pika
from pika.exceptions import AMQPError
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from contracts.catalogue import with_command_id

__all__ = ["CrmClient", "RemoteError", "Subscription", "RPC_EXCHANGE", "AUTH_HEADER", "DEADLINE_HEADER"]

#: nameko's default RPC exchange (config key ``rpc_exchange``).
RPC_EXCHANGE = "nameko-rpc"
#: nameko maps ``nameko.<key>`` headers to worker context data ``<key>``.
AUTH_HEADER = "nameko.authorization"
#: When the caller stops waiting (Unix milliseconds): a service refuses a request that arrives later.
DEADLINE_HEADER = "nameko.deadline_ms"
_JSON = "application/json"
_PERSISTENT = 2  # nameko publishes requests and events with delivery_mode 2


class RemoteError(Exception):
    """An exception raised inside the remote service's worker.

    Mirrors nameko's ``RemoteError``: branch on :attr:`exc_type`
    (``ValidationError``, ``NotFound``, ``Conflict``, ``Forbidden``,
    ``Unauthenticated``, or any other class name), show :attr:`value`.
    """

    def __init__(self, exc_type: str, value: str, exc_args: Iterable[Any] = ()):
        super().__init__(*exc_args)
        self.exc_type = exc_type
        self.value = value

    def __str__(self) -> str:
        return f"{self.exc_type} {self.value}"

    def __reduce__(self) -> tuple[Any, ...]:
        # ``args`` holds the remote exc_args, not our constructor's arguments.
        return (type(self), (self.exc_type, self.value, self.args))


class CrmClient:
    """RPC calls and event subscriptions against a CareCRM (nameko) cluster.

    ``timeout`` (seconds) bounds every :meth:`call`; change the attribute to
    change it. The connection opens lazily and reopens if the broker dropped
    it while the client sat idle (the exclusive reply queue dies with the
    connection, so it is declared again then). A call in flight when the
    connection breaks is not retried: the request may have been delivered.
    """

    def __init__(self, amqp_uri: str = "amqp://guest:guest@127.0.0.1:5672/",
                 token: str | None = None, timeout: float = 10.0):
        self.amqp_uri = amqp_uri
        self.token = token
        self.timeout = timeout
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._reply_key = ""
        self._replies: dict[str, bytes] = {}
        self._pending: set[str] = set()

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> CrmClient:
        self._ensure_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; its exclusive queues go with it."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except AMQPError:
                pass  # the broker closed it first; nothing left to release

    def _ensure_open(self) -> pika.BlockingConnection:
        if self._conn is not None and self._conn.is_open:
            try:
                # A non-blocking poll notices a connection the broker dropped
                # while we were idle (and answers heartbeats meanwhile).
                self._conn.process_data_events(time_limit=0)
                return self._conn
            except AMQPError:
                pass
        self._conn = pika.BlockingConnection(pika.URLParameters(self.amqp_uri))
        channel = self._conn.channel()
        # Same arguments as nameko's get_rpc_exchange, so this never conflicts.
        channel.exchange_declare(RPC_EXCHANGE, exchange_type="topic", durable=True)
        # Like nameko's reply listener: a queue bound to nameko-rpc under its own
        # uuid routing key, which goes out as reply_to. Exclusive and
        # auto-delete (nameko's uses x-expires) so a client leaves nothing behind.
        self._reply_key = str(uuid.uuid4())
        queue = f"rpc.reply-crm-client-{self._reply_key}"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        channel.queue_bind(queue, RPC_EXCHANGE, routing_key=self._reply_key)
        channel.basic_consume(queue, self._on_reply, auto_ack=True)
        self._channel = channel
        self._replies.clear()
        self._pending.clear()
        return self._conn

    # -- RPC -----------------------------------------------------------------

    def call(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``service.method(*args, **kwargs)`` and return its result.

        Raises :class:`RemoteError` if the method raised, and ``TimeoutError``
        if no reply came within :attr:`timeout` — which is also what happens
        when no such service is running (the request is not ``mandatory``).
        """
        conn = self._ensure_open()
        assert self._channel is not None
        correlation_id = str(uuid.uuid4())
        headers = {DEADLINE_HEADER: time.time_ns() // 1_000_000 + int(self.timeout * 1000)}
        if self.token is not None:
            headers[AUTH_HEADER] = self.token
        kwargs = with_command_id(service, method, kwargs)
        properties = BasicProperties(
            content_type=_JSON, content_encoding="utf-8", delivery_mode=_PERSISTENT,
            correlation_id=correlation_id, reply_to=self._reply_key, headers=headers)
        body = json.dumps({"args": list(args), "kwargs": kwargs}).encode()
        self._pending.add(correlation_id)
        try:
            self._channel.basic_publish(RPC_EXCHANGE, f"{service}.{method}", body, properties)
            deadline = time.monotonic() + self.timeout
            while correlation_id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no reply from {service}.{method} within {self.timeout:g} s")
                conn.process_data_events(time_limit=remaining)
            reply = json.loads(self._replies.pop(correlation_id))
        finally:
            self._pending.discard(correlation_id)
            self._replies.pop(correlation_id, None)
        error = reply.get("error")
        if error:
            raise RemoteError(error.get("exc_type", "Exception"), error.get("value", ""),
                              error.get("exc_args") or ())
        return reply.get("result")

    def _on_reply(self, _ch: BlockingChannel, _method: Basic.Deliver,
                  properties: BasicProperties, body: bytes) -> None:
        # Late replies to calls that already timed out are dropped here.
        if properties.correlation_id in self._pending:
            self._replies[properties.correlation_id] = body

    # -- events --------------------------------------------------------------

    def subscribe(self, service: str, event_types: Iterable[str] | str,
                  queue_name: str | None = None, prefetch: int = 50) -> Subscription:
        """Start receiving ``service``'s events of ``event_types``.

        The queue is declared and bound *before* this returns, so events
        dispatched afterwards are not missed. Without ``queue_name`` the queue
        is private to this connection and vanishes with it (a tap, like a
        nameko broadcast handler without reliable delivery). With one, it is
        durable and shared: events wait in it while nobody listens, and
        several subscribers under one name split the events between them.
        """
        self._ensure_open()
        assert self._conn is not None
        return Subscription(self._conn, service,
                            [event_types] if isinstance(event_types, str) else list(event_types),
                            queue_name, prefetch)


class Subscription:
    """A consumer on one service's event exchange; iterate or call :meth:`get`.

    Each event is acknowledged when it is handed to the caller; events still
    buffered when the subscription closes go back to a named queue.
    """

    def __init__(self, conn: pika.BlockingConnection, service: str, event_types: list[str],
                 queue_name: str | None, prefetch: int):
        self._conn = conn
        self._channel = conn.channel()
        self._buffer: deque[tuple[int, bytes]] = deque()
        exchange = f"{service}.events"
        # Exactly nameko's get_event_exchange (topic, durable, not auto-delete
        # by default), so declaring it never fails with PRECONDITION_FAILED.
        self._channel.exchange_declare(exchange, exchange_type="topic", durable=True)
        if queue_name is None:
            queue_name = f"crm-client-evt-{service}-{uuid.uuid4().hex}"
            self._channel.queue_declare(queue_name, exclusive=True, auto_delete=True)
        else:
            self._channel.queue_declare(queue_name, durable=True)
        for event_type in event_types:
            self._channel.queue_bind(queue_name, exchange, routing_key=event_type)
        self._channel.basic_qos(prefetch_count=prefetch)
        self._channel.basic_consume(queue_name, self._on_event)
        self.queue_name = queue_name

    def _on_event(self, _ch: BlockingChannel, method: Basic.Deliver,
                  _properties: BasicProperties, body: bytes) -> None:
        self._buffer.append((method.delivery_tag, body))

    def get(self, timeout: float | None = None) -> Any:
        """The next event's decoded JSON body; ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no event on {self.queue_name} within {timeout:g} s")
            self._conn.process_data_events(time_limit=remaining)
        tag, body = self._buffer.popleft()
        self._channel.basic_ack(tag)
        return json.loads(body)

    def __iter__(self) -> Iterator[Any]:
        """Yield events forever (blocking); stop by breaking out of the loop."""
        while True:
            yield self.get()

    def close(self) -> None:
        """Stop consuming; unacknowledged events return to a named queue."""
        if self._channel.is_open:
            self._channel.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
