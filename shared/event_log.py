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
from typing import Any, Callable, Iterator, Sequence

from nameko.extensions import DependencyProvider

from shared.auth import Principal, issue_token
from shared.config import Settings, load_settings
from contracts.envelope import Envelope as EnvelopeSchema
from shared.crypto import KeyRing
from shared.errors import ValidationError
from shared.dead_letters import DeadLetters
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import Appended, EventStore
from shared.eventstore.upcasting import Upcasters
from shared.leases import Lease
from shared.migrations import upgrade
from shared.projections import Projection, ProjectionRunner
from shared.relay import Relay
from shared.validation import load

log = logging.getLogger(__name__)
FOLLOW_POLL_SECONDS = 0.5
UPSTREAM_SWEEP_SECONDS = 30.0  # also catches the last events of a burst whose delivery was lost
UPSTREAM_PAGE = 500


class UpstreamEvents:
    """Pulls a producer's events over RPC: start-up catch-up and gap filling."""

    def __init__(self, settings: Settings, service: str):
        self._config = {"AMQP_URI": settings.amqp_uri}
        self._secret = settings.secret
        self._service = service

    def __call__(self, upstream: str, after_position: int, limit: int) -> list[dict[str, Any]]:
        from nameko.standalone.rpc import ClusterRpcProxy

        token = issue_token(self._secret, "service", self._service, ttl_seconds=300)
        with ClusterRpcProxy(self._config, context_data={"authorization": token}, timeout=10) as proxy:
            return getattr(proxy, upstream).events_since(after_position, limit)


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
        self.fetch_upstream = UpstreamEvents(self.settings, service)
        self.runners = [ProjectionRunner(self.store.engine, projection, self.fetch_upstream)
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
        if self.upstreams():
            self.container.spawn_managed_thread(self._sweep_upstreams)

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
        """Apply every event of the own log the projections that follow it have not seen yet."""
        own = self.store.service
        for runner in self.runners:
            if own in runner.projection.upstreams:
                runner.catch_up(own, self.store.iter_since(runner.position(own)))

    def log_of(self, upstream: str) -> Iterator[Any]:
        """Every event of ``upstream`` from the start: ours from the store, others' over ``events_since``."""
        if upstream == self.store.service:
            yield from self.store.iter_since(0)
            return
        after = 0
        while page := self.fetch_upstream(upstream, after, UPSTREAM_PAGE):
            yield from page
            after = page[-1]["position"]
            if len(page) < UPSTREAM_PAGE:
                return

    def _follow_own_log(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                self.catch_up()
            except Exception:  # keep following: a broken database must not end the service
                log.exception("projection catch-up failed; retrying")
            self._wakeup.wait(FOLLOW_POLL_SECONDS)

    def upstreams(self) -> set[str]:
        """Other services whose events this service projects."""
        return {upstream for runner in self.runners for upstream in runner.projection.upstreams} - {self.store.service}

    def project(self, upstream: str, envelope: dict[str, Any]) -> None:
        """Apply one delivered event of ``upstream`` to every projection that follows it."""
        for runner in self.runners:
            if upstream in runner.projection.upstreams:
                runner.handle(upstream, envelope)

    def pull_upstreams(self) -> None:
        """Ask each producer for what we have not seen yet (events published while we were away)."""
        for runner in self.runners:
            for upstream in set(runner.projection.upstreams) - {self.store.service}:
                while events := self.fetch_upstream(upstream, runner.position(upstream), UPSTREAM_PAGE):
                    runner.catch_up(upstream, events)
                    if len(events) < UPSTREAM_PAGE:
                        break

    def _sweep_upstreams(self) -> None:
        while not self._stop.is_set():
            try:
                self.pull_upstreams()
            except Exception as error:  # the producer may be down: try again at the next sweep
                log.warning("could not pull upstream events: %s", error)
            self._stop.wait(UPSTREAM_SWEEP_SECONDS)

    def health(self) -> dict[str, Any]:
        head = self.store.head_position()
        own = self.store.service
        return {
            "service": own,
            "log_position": head,
            "projections": {runner.projection.name: {
                "positions": positions,
                "lag": head - positions[own] if own in positions else 0,  # lag of the own log only
                "forked": dict(runner.forked)}
                for runner in self.runners for positions in [runner.positions()]},
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

    def project(self, upstream: str, envelope: Any) -> None:
        """Entry for ``@event_handler(upstream, "#")``: validate, then apply."""
        try:
            load(EnvelopeSchema(), envelope)
        except ValidationError as error:  # not an event at all: nothing to apply or park
            log.error("dropped a malformed %s event: %s", upstream, error.fields)
            return
        if envelope["service"] != upstream:
            log.error("dropped a %s event delivered as %s", envelope["service"], upstream)
            return
        self.provider.project(upstream, envelope)

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
