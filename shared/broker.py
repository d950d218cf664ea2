"""How a service's consumers hold on to the broker: reconnect quickly, and survive a lost reply.

nameko's queue consumer retries a lost connection after 2, 4, 6 ... up to
30 s, so after a 30 s outage a service could wait another 12 s before it
listens again. Here the wait starts at a quarter of a second and never
exceeds ``RECONNECT_MAX_SECONDS``, so a service answers within seconds of
the broker's return. Everything that consumes (RPC requests through
``shared.rpc``, upstream events through ``LogEndpoints``) shares this one
consumer, and with it one connection.

An acknowledgement (or a requeue) on a connection the broker just dropped
is given up: the broker delivers the unacknowledged message again, and
consumers apply an event or a command once whatever the deliveries. nameko
gives up only on AMQP's own connection error, so a reset socket would
otherwise kill the whole service.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from amqp.exceptions import AMQPError
from kombu.exceptions import KombuError

from nameko.events import EventHandler
from nameko.messaging import QueueConsumer
from nameko.rpc import RpcConsumer

RECONNECT_FIRST_SECONDS = 0.25
RECONNECT_STEP_SECONDS = 0.25
RECONNECT_MAX_SECONDS = 2.0
CONNECTION_LOST = (OSError, AMQPError, KombuError)

log = logging.getLogger(__name__)


class ReconnectingQueueConsumer(QueueConsumer):
    """nameko's queue consumer, retrying a lost broker every ``RECONNECT_MAX_SECONDS`` at most."""

    @contextlib.contextmanager
    def establish_connection(self) -> Iterator:
        with self.create_connection() as connection:
            connection.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                         interval_start=RECONNECT_FIRST_SECONDS,
                                         interval_step=RECONNECT_STEP_SECONDS,
                                         interval_max=RECONNECT_MAX_SECONDS)
            yield connection

    def ack_message(self, message) -> None:
        with _redelivered_if_connection_lost("acknowledge", message):
            super().ack_message(message)

    def requeue_message(self, message) -> None:
        with _redelivered_if_connection_lost("requeue", message):
            super().requeue_message(message)


@contextlib.contextmanager
def _redelivered_if_connection_lost(what: str, message) -> Iterator[None]:
    try:
        yield
    except CONNECTION_LOST as error:
        log.warning("could not %s message %s, the broker connection is gone (%s); the broker delivers it again",
                    what, message.delivery_tag, error)


class ReconnectingRpcConsumer(RpcConsumer):
    queue_consumer = ReconnectingQueueConsumer()


class UpstreamEventHandler(EventHandler):
    """``@event_handler`` on the reconnecting consumer."""

    queue_consumer = ReconnectingQueueConsumer()


upstream_event_handler = UpstreamEventHandler.decorator
