"""The nameko dependency that gives a service its event log.

One ``EventLog`` per service container owns the store, the data keys, the
relay (log → RabbitMQ) and the projections built from the service's own log.
It starts them with the container and stops them with it; workers get a
thin ``WorkerLog`` that appends with the caller's identity.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from nameko.extensions import DependencyProvider

from shared.auth import Principal
from shared.config import Settings, load_settings
from shared.crypto import KeyRing
from shared.dead_letters import DeadLetters
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import Appended, EventStore
from shared.eventstore.upcasting import Upcasters
from shared.leases import Lease
from shared.migrations import upgrade
from shared.projections import Projection, ProjectionRunner
from shared.relay import Relay

log = logging.getLogger(__name__)
FOLLOW_POLL_SECONDS = 0.5


class EventLog(DependencyProvider):
    def __init__(self, projections: Callable[[KeyRing], Sequence[Projection]] = lambda keys: (),
                 migrations: Path | None = None, upcasters: Upcasters | None = None):
        self._make_projections = projections
        self._migrations = migrations
        self._upcasters = upcasters
        self._stop = threading.Event()
        self._wakeup = threading.Event()

    def setup(self) -> None:
        service = self.container.service_name
        self.settings: Settings = load_settings(self.container.config)
        self.store = EventStore.open(self.settings.database_url(service), service, self._upcasters)
        if self._migrations is not None:
            upgrade(self.store.engine, self._migrations, f"alembic_version_{service}")
        self.keys = KeyRing(self.store.engine, self.settings.master_key)
        self.runners = [ProjectionRunner(self.store.engine, projection)
                        for projection in self._make_projections(self.keys)]
        self.dead_letters = DeadLetters(self.store.engine)
        owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.relay = Relay(self.store, self.settings.amqp_uri, Lease(self.store.engine, f"{service}.relay", owner))
        self.store.on_append(lambda _envelopes: (self.relay.wake(), self._wakeup.set()))

    def start(self) -> None:
        self._stop.clear()
        self.container.spawn_managed_thread(lambda: self.relay.run(self._stop))
        if self.runners:
            self.container.spawn_managed_thread(self._follow_own_log)

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        self.relay.wake()
        self.relay.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> "WorkerLog":
        return WorkerLog(self, worker_ctx)

    def catch_up(self) -> None:
        """Apply every event of the own log the projections have not seen yet."""
        for runner in self.runners:
            runner.catch_up(self.store.service, self.store.iter_since(runner.position(self.store.service)))

    def _follow_own_log(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                self.catch_up()
            except Exception:  # keep following: a broken database must not end the service
                log.exception("projection catch-up failed; retrying")
            self._wakeup.wait(FOLLOW_POLL_SECONDS)

    def health(self) -> dict[str, Any]:
        head = self.store.head_position()
        return {
            "service": self.store.service,
            "log_position": head,
            "projections": {runner.projection.name: {"position": runner.position(self.store.service),
                                                     "lag": head - runner.position(self.store.service)}
                            for runner in self.runners},
            "relay_backlog": self.relay.backlog(),
            "dead_letters": self.dead_letters.count(),
        }


class WorkerLog:
    """What one worker sees of the log: appends carry the caller and the call chain."""

    def __init__(self, provider: EventLog, worker_ctx):
        self.provider = provider
        self.store: EventStore = provider.store
        self.keys: KeyRing = provider.keys
        self._worker_ctx = worker_ctx

    def context(self, principal: Principal) -> CommandContext:
        stack = self._worker_ctx.call_id_stack or [self._worker_ctx.call_id]
        return CommandContext(principal.actor_id, principal.role,
                              correlation_id=self._worker_ctx.data.get("correlation_id") or stack[0],
                              causation_id=self._worker_ctx.call_id)

    def once(self, command_id: str | None, handle: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a command unless one with this id already ran: then return its first result."""
        if command_id is not None:
            earlier = self.store.command_result(command_id)
            if earlier is not None:
                return earlier
        return handle()

    def append(self, principal: Principal, stream_id: str, events: Sequence[NewEvent],
               expected_version: int | None, command_id: str | None = None,
               result: Callable[[Appended], dict[str, Any]] | None = None) -> Any:
        return self.store.append(stream_id, events, expected_version, self.context(principal),
                                 command_id=command_id, result=result)
