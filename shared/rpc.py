"""The RPC entrypoint of every CareCRM service: nameko's, plus the request's identity and deadline.

Two things nameko's ``@rpc`` does not do, and a command path needs:

* **Redelivery.** When the connection drops after a service committed but
  before the broker got its ack, the broker delivers the same request
  again. The request's AMQP ``correlation_id`` is the same both times, so
  it is handed to the worker as ``request_id`` in its context data, and the
  command path (``shared.commands``) uses it as the command id when the
  caller sent none: the redelivery gets the first answer and appends
  nothing.
* **Deadlines.** A caller puts the moment it stops waiting (``deadline_ms``,
  Unix milliseconds, in its context data; the CLI and ``contracts.client`` do)
  into the request. A request that arrives after it is refused with
  ``DeadlineExceeded`` without running: nobody waits for its answer, and
  running it would surprise the caller who saw a failure. Hosts' clocks
  must agree to well within callers' timeouts (as leases already require).

A deadline travels on to the calls a worker makes, as nameko passes
context data along; ``request_id`` is replaced by each service's own.

A reply that cannot be sent because the broker went away does not end the
service (nameko's own entrypoint lets that error kill the container): the
request stays unacknowledged, the broker delivers it again once the
service is back, and the command path answers it from the command record.
Requests are consumed through ``shared.broker``, which reconnects within
seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from nameko.rpc import Rpc

from shared.broker import CONNECTION_LOST, ReconnectingRpcConsumer
from shared.errors import DeadlineExceeded

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "request_id"
DEADLINE_KEY = "deadline_ms"


class Request(Rpc):
    """nameko's RPC entrypoint, refusing late requests and naming each request for the command path."""

    rpc_consumer = ReconnectingRpcConsumer()

    def unpack_message_headers(self, message) -> dict[str, Any]:
        context_data = super().unpack_message_headers(message)
        context_data[REQUEST_ID_KEY] = message.properties.get("correlation_id")
        return context_data

    def handle_message(self, body, message) -> None:
        late = expired((message.headers or {}).get(f"{self.header_prefix}.{DEADLINE_KEY}"), now_ms())
        if late is None:
            super().handle_message(body, message)
            return
        log.warning("refused %s.%s: %s", self.container.service_name, self.method_name, late)
        try:
            raise DeadlineExceeded(late)
        except DeadlineExceeded:
            self._answer(message, None, sys.exc_info())

    def handle_result(self, message, worker_ctx, result, exc_info):
        return self._answer(message, result, exc_info)

    def _answer(self, message, result, exc_info):
        """Reply and acknowledge; if the broker is away, leave the request to be delivered again."""
        try:
            return self.rpc_consumer.handle_result(message, result, exc_info)
        except CONNECTION_LOST as error:
            log.warning("could not answer %s.%s, the broker is away (%s); the request will be delivered "
                        "again", self.container.service_name, self.method_name, error)
            return result, exc_info


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def deadline_after(seconds: float) -> int:
    """The ``deadline_ms`` of a caller that waits ``seconds`` from now (an integer: AMQP headers carry no floats)."""
    return now_ms() + int(seconds * 1000)


def expired(deadline_ms: Any, now: int) -> str | None:
    """Why a request with this deadline may not run at ``now`` (both Unix ms); ``None`` if it may."""
    if deadline_ms is None:
        return None
    if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, int):
        return f"the request's deadline {deadline_ms!r} is not a whole number of Unix milliseconds"
    if now > deadline_ms:
        return f"the request arrived {(now - deadline_ms) / 1000:.3f} s after its caller's deadline; it was not run"
    return None


rpc = Request.decorator
