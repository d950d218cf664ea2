"""Long-lived RPC clients per service for its calls to the services it follows.

Gap fills, start-up catch-up and the periodic sweep all ask a producer for
``events_since``. A standalone nameko proxy per call opens a connection
and leaves a reply queue behind for five minutes (nameko's reply-queue
expiry), so a burst of gap fills once piled up hundreds of queues on the
broker. This client keeps its proxies for the life of the service. A
nameko standalone proxy serves one call at a time, so the client holds up
to ``connections`` of them and a call takes an idle one (or opens one);
with one, calls are serialised. A broken connection or a timeout drops
that proxy, and a later call opens a fresh one.
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
    """``call(service, method, *args)`` with the service's own token, over reused proxies."""

    def __init__(self, amqp_uri: str, token: str | None, timeout: float = CALL_TIMEOUT_SECONDS,
                 connections: int = 1):
        self._config = {"AMQP_URI": amqp_uri}
        self._context = {CONTEXT_KEY: token} if token else {}
        self._timeout = timeout
        self._free = threading.BoundedSemaphore(connections)  # calls in flight, at most one per proxy
        self._lock = threading.Lock()
        self._idle: list[tuple[ClusterRpcProxy, Any]] = []  # (client, started proxy)
        self._closed = False

    def call(self, service: str, method: str, *args: Any) -> Any:
        with self._free:
            client, proxy = self._take()
            try:
                result = getattr(getattr(proxy, service), method)(*args)
            except _BROKEN:
                _stop(client)  # a late reply or a dead connection must not reach the next call
                raise
            except Exception:
                self._give_back(client, proxy)  # the far side answered, with an error: the proxy is fine
                raise
            except BaseException:
                _stop(client)  # interrupted mid-call (a killed greenthread): its reply may still come
                raise
            self._give_back(client, proxy)
            return result

    def close(self) -> None:
        """Stop the idle proxies; one still in a call is stopped when the call returns."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client, _proxy in idle:
            _stop(client)

    def _take(self) -> tuple[ClusterRpcProxy, Any]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        client = ClusterRpcProxy(self._config, context_data=self._context, timeout=self._timeout)
        return client, client.start()

    def _give_back(self, client: ClusterRpcProxy, proxy: Any) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append((client, proxy))
                return
        _stop(client)


def _stop(client: ClusterRpcProxy) -> None:
    try:
        client.stop()
    except _BROKEN:
        log.debug("the upstream client's connection was already gone")
