"""One long-lived RPC client per service for its calls to the services it follows.

Gap fills, start-up catch-up and the periodic sweep all ask a producer for
``events_since``. A standalone nameko proxy per call opens a connection
and leaves a reply queue behind for five minutes (nameko's reply-queue
expiry), so a burst of gap fills once piled up hundreds of queues on the
broker. This client opens one proxy, keeps it for the life of the service
and serialises calls through it (nameko's standalone proxy serves one call
at a time); a broken connection or a timeout drops the proxy, and the next
call opens a fresh one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.exceptions import RpcTimeout
from nameko.standalone.rpc import ClusterRpcProxy

from shared.auth import CONTEXT_KEY
from shared.broker import CONNECTION_LOST

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 10.0
_BROKEN = (*CONNECTION_LOST, RpcTimeout)


class UpstreamClient:
    """``call(service, method, *args)`` with the service's own token, over one reused proxy."""

    def __init__(self, amqp_uri: str, token: str | None, timeout: float = CALL_TIMEOUT_SECONDS):
        self._config = {"AMQP_URI": amqp_uri}
        self._context = {CONTEXT_KEY: token} if token else {}
        self._timeout = timeout
        self._lock = threading.Lock()
        self._client: ClusterRpcProxy | None = None
        self._proxy = None

    def call(self, service: str, method: str, *args: Any) -> Any:
        with self._lock:
            if self._proxy is None:
                self._client = ClusterRpcProxy(self._config, context_data=self._context, timeout=self._timeout)
                self._proxy = self._client.start()
            try:
                return getattr(getattr(self._proxy, service), method)(*args)
            except _BROKEN:
                self._drop()  # a late reply or a dead connection must not reach the next call
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        client, self._client, self._proxy = self._client, None, None
        if client is not None:
            try:
                client.stop()
            except _BROKEN:
                log.debug("the upstream client's connection was already gone")
