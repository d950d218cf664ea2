"""A nameko service that does nothing: the framework's own cost per RPC.

``crm bench`` runs it in its own process beside the customers service and
drives both with the same client, so ``register_vs_noop`` tells how much
the store, the relay and the domain add on top of nameko itself.
"""

from __future__ import annotations

from nameko.rpc import rpc


class NoopService:
    name = "bench_noop"

    @rpc
    def ping(self):
        return None

    @rpc
    def health(self):
        return {"service": self.name, "ok": True}
