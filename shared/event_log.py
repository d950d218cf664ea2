"""The nameko dependency that gives a service its event log.

One ``EventLog`` per service container owns the store, the data keys, the
relay (log → RabbitMQ) and the consumers (projections and reactions) that
follow the service's own log and its upstreams' logs, and scrubs the
database files after erasures (``shared.erasure``). It starts them with
the container and stops them with it; workers get a thin ``WorkerLog``
that appends with the caller's identity.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from nameko.extensions import DependencyProvider

from shared.auth import Principal
from shared.config import Settings, load_settings
from contracts.envelope import Envelope as EnvelopeSchema
from shared.crypto import KeyRing
from shared.command_fingerprints import fingerprint_key
from shared.error_text import describe
from shared.erasure import ScrubAfterErasures
from shared.errors import ValidationError
from shared.dead_letters import DeadLetters
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import Appended, EventStore
from shared.eventstore.upcasting import Upcasters
from shared.leases import Lease, owner_id
from shared.migrations import History, migrate_or_check
from shared.consumer_runner import ConsumerRunner
from shared.consumers import Consumer
from shared.lag import upstream_lag
from shared.relay import Relay
from shared.signing import EventCheck
from shared.upstream_client import UpstreamClient
from shared.validation import load

log = logging.getLogger(__name__)
FOLLOW_POLL_SECONDS = 0.5  # also how soon a stalled consumer's due retry runs
UPSTREAM_SWEEP_SECONDS = 5.0  # ask upstreams for their heads; pull what a lost delivery left behind
ENVELOPE_SCHEMA = EnvelopeSchema()  # built once: a schema holds no state between loads, and every delivery is checked
UPSTREAM_PAGE = 500


class UpstreamEvents:
    """Pulls a producer's events over RPC, as the service's own service token says: catch-up and gap filling."""

    def __init__(self, settings: Settings):
        self.client = UpstreamClient(settings.amqp_uri, settings.service_token)

    def __call__(self, upstream: str, after_position: int, limit: int) -> list[dict[str, Any]]:
        return self.client.call(upstream, "events_since", after_position, limit)


class EventLog(DependencyProvider):
    """The service's log, its relay and its consumers.

    ``consumers`` are the ``Projection`` and ``Reaction`` classes the
    service runs; each is made with the service's key ring. Their upstreams
    decide which other services' events the service subscribes to
    (``LogEndpoints``).
    """

    def __init__(self, consumers: Iterable[type[Consumer]] = (), migrations: Path | None = None,
                 upcasters: Upcasters | None = None):
        self.consumer_classes = tuple(consumers)
        self._migrations = migrations
        self._upcasters = upcasters
        self._stop = threading.Event()
        self.relay: Relay | None = None  # these two stay None when setup refuses to start the service
        self.fetch_upstream: UpstreamEvents | None = None
        self.upstream_heads: dict[str, tuple[int, str | None]] = {}  # from each upstream's log_head()
        self._swept: dict[tuple[str, str], int] = {}  # (consumer, upstream) -> position at the last sweep
        self._wakeup = threading.Event()

    def history(self, service: str) -> History | None:
        """The migration history of the service's own tables (its read models), if it has any."""
        return None if self._migrations is None else History(self._migrations, f"alembic_version_{service}")

    def followed_services(self) -> set[str]:
        """Every service whose events a consumer of this log applies (its own included)."""
        return {upstream for consumer in self.consumer_classes for upstream in consumer.upstreams}

    def setup(self) -> None:
        service = self.container.service_name
        self.settings: Settings = load_settings(self.container.config)
        upstreams = sorted(self.followed_services() - {service})
        if upstreams and not self.settings.service_token:
            raise ValidationError({"CRM_SERVICE_TOKEN": [
                f"{service} pulls events from {', '.join(upstreams)}: give it a service token "
                f"(crm token --role service --actor {service} "
                f"{' '.join(f'--audience {name}' for name in [service, *upstreams])})"]})
        self.service_keys = self.settings.signing.service_keys()
        self.store = EventStore.open(self.settings.database_url(service), self.settings.signing.signer(service),
                                     self._upcasters, self.service_keys)
        own = self.history(service)
        if own is not None:
            try:
                migrate_or_check(self.store.engine, own, service)
            except BaseException:
                self.store.close()
                raise
        self.keys = KeyRing(self.store.engine, self.settings.master_key)
        self.fingerprint_key = fingerprint_key(self.settings.master_key)
        self.fetch_upstream = UpstreamEvents(self.settings)
        check = EventCheck(self.service_keys, own_service=service)
        self.runners = [ConsumerRunner(self.store.engine, consumer(self.keys), self.fetch_upstream, check=check)
                        for consumer in self.consumer_classes]
        for runner in self.runners:
            runner.consumer.bind(self)
        self.dead_letters = DeadLetters(self.store.engine)
        self.erasure_scrub = ScrubAfterErasures(self.store.engine, self.runners)
        self.relay = Relay(self.store, self.settings.amqp_uri,
                           Lease(self.store.engine, f"{service}.relay", owner_id(self)))
        self.store.on_append(lambda _envelopes: (self.relay.wake(), self._wakeup.set()))

    def start(self) -> None:
        self._stop.clear()
        self.container.spawn_managed_thread(lambda: self.relay.run(self._stop))
        if self.runners:
            self.container.spawn_managed_thread(self._follow)
        if self.upstreams():
            self.container.spawn_managed_thread(self._sweep_upstreams)

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self.relay is not None:
            self.relay.wake()
            self.relay.close()
        if self.fetch_upstream is not None:
            self.fetch_upstream.client.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> "WorkerLog":
        return WorkerLog(self, worker_ctx)

    def catch_up(self) -> None:
        """Apply every event of the own log the consumers that follow it have not seen yet."""
        own = self.store.service
        for runner in self.runners:
            if own in runner.consumer.upstreams:
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

    def _follow(self) -> None:
        """Keep the consumers of the own log current, retry stalled ones when due, then scrub after erasures."""
        while not self._stop.is_set():
            self._wakeup.clear()
            try:
                self.catch_up()
                self.retry_stalled()
                self.erasure_scrub.run_when_settled()
            except Exception as error:  # keep following: a broken database must not end the service
                log.error("catching up the consumers failed; retrying: %s", describe(error))
            self._wakeup.wait(FOLLOW_POLL_SECONDS)

    def retry_stalled(self) -> None:
        """Give each stalled consumer whose back-off has passed its next try, from its upstream's log."""
        for runner in self.runners:
            for upstream in runner.due_retries():
                if upstream == self.store.service:
                    runner.catch_up(upstream, self.store.iter_since(runner.position(upstream)))
                else:
                    self._pull(runner, upstream)

    def upstreams(self) -> set[str]:
        """Other services whose events this service consumes."""
        return self.followed_services() - {self.store.service}

    def project(self, upstream: str, envelope: dict[str, Any]) -> None:
        """Apply one delivered event of ``upstream`` to every consumer that follows it."""
        for runner in self.runners:
            if upstream in runner.consumer.upstreams:
                runner.handle(upstream, envelope)

    def refuse(self, upstream: str, event_id: str | None, reason: str) -> None:
        """Count a delivered ``upstream`` event that is not even an event, for every consumer that follows it."""
        for runner in self.runners:
            if upstream in runner.consumer.upstreams:
                runner.refuse(upstream, event_id, reason)

    def pull_upstreams(self, only_behind: bool = False,
                       earlier_heads: dict[str, tuple[int, str | None]] | None = None) -> dict[str, str]:
        """Ask each producer for what we have not seen yet (events published while we were away).

        With ``only_behind`` (the sweep's way), an upstream is pulled only by
        the consumers that deliveries are not bringing up to its head (see
        ``_stuck``); ``earlier_heads`` are the heads the previous sweep saw. A producer
        that cannot be reached is logged and skipped, so it holds back no
        other's events; the answer names each one and why.
        """
        unreachable: dict[str, str] = {}
        for runner in self.runners:
            for upstream in sorted(set(runner.consumer.upstreams) - {self.store.service}):
                if not only_behind or self._stuck(runner, upstream, earlier_heads or {}):
                    try:
                        self._pull(runner, upstream)
                    except Exception as error:  # one producer away must not keep the others' events back
                        log.warning("could not pull %s's events: %s", upstream, error)
                        unreachable[upstream] = describe(error)
        return unreachable

    def _stuck(self, runner: ConsumerRunner, upstream: str, earlier_heads: dict[str, tuple[int, str | None]]) -> bool:
        """Whether a consumer behind ``upstream``'s head waits for events the broker is not bringing.

        It is when nothing of the upstream applied since the last sweep, or
        when it is still short of the head the last sweep saw: those events
        had a whole sweep to arrive. A consumer that deliveries keep moving
        is left to them, so a busy upstream is not also fetched page by page.
        """
        position = runner.position(upstream)
        before = self._swept.get((runner.consumer.name, upstream))
        self._swept[(runner.consumer.name, upstream)] = position
        head, earlier = self.upstream_heads.get(upstream), earlier_heads.get(upstream)
        if head is None:
            return True
        if position >= head[0]:
            return False
        return before is None or position <= before or (earlier is not None and position < earlier[0])

    def _pull(self, runner: ConsumerRunner, upstream: str) -> None:
        while events := self.fetch_upstream(upstream, runner.position(upstream), UPSTREAM_PAGE):
            outcomes = runner.catch_up(upstream, events)
            if len(events) < UPSTREAM_PAGE or outcomes.get("stalled"):
                break

    def _sweep_upstreams(self) -> None:
        """Every few seconds: learn each upstream's head, and pull from those a consumer is behind."""
        while not self._stop.is_set():
            try:
                earlier = dict(self.upstream_heads)
                self.probe_upstream_heads()
                self.pull_upstreams(only_behind=True, earlier_heads=earlier)
            except Exception as error:  # e.g. our own database: try again at the next sweep
                log.warning("the upstream sweep failed: %s", describe(error))
            self._stop.wait(UPSTREAM_SWEEP_SECONDS)

    def probe_upstream_heads(self) -> dict[str, str]:
        """Ask each upstream for its head, so lag counts events not delivered yet; answers those not reached."""
        unreachable: dict[str, str] = {}
        for upstream in sorted(self.upstreams()):
            try:
                answer = self.fetch_upstream.client.call(upstream, "log_head")
            except Exception as error:  # one producer away must not hide the others' heads
                log.warning("could not ask %s for its head: %s", upstream, error)
                unreachable[upstream] = describe(error)
                continue
            self.upstream_heads[upstream] = (answer["position"], answer["recorded_at"])
        return unreachable

    def health(self) -> dict[str, Any]:
        own = self.store.service
        heads = {**self.upstream_heads, own: self.store.head()}
        now = time.time()
        consumers: dict[str, dict[str, Any]] = {"projections": {}, "reactions": {}}
        for runner in self.runners:
            positions = runner.positions()
            upstreams = {upstream: upstream_lag(heads.get(upstream), applied, runner.last_applied.get(upstream), now)
                         for upstream, applied in positions.items()}
            kind = "projections" if runner.consumer.rebuildable else "reactions"
            consumers[kind][runner.consumer.name] = {
                "positions": positions,
                "upstreams": upstreams,
                "lag": max((lag["lag_events"] or 0 for lag in upstreams.values()), default=0),
                "forked": dict(runner.forked),
                "stalled": runner.stalled(),
                "refused": {upstream: dict(entry) for upstream, entry in runner.refused.items()},
            }
        return {
            "service": own,
            "log_position": heads[own][0],
            **consumers,
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

    def project(self, envelope: Any) -> None:
        """Entry for an upstream's ``@event_handler``: validate, then apply to the consumers that follow it.

        A body that is not an envelope is refused here; the consumers check
        the rest (producer, hash, signature).
        """
        upstream = self._worker_ctx.entrypoint.source_service
        try:
            load(ENVELOPE_SCHEMA, envelope)
        except ValidationError as error:  # not an event at all: nothing to apply or park
            event_id = envelope.get("event_id") if isinstance(envelope, dict) else None
            self.provider.refuse(upstream, event_id if isinstance(event_id, str) else None,
                                 f"malformed envelope: {error.fields}")
            return
        self.provider.project(upstream, envelope)

    def append(self, principal: Principal, stream_id: str, events: Sequence[NewEvent],
               expected_version: int | None) -> Appended:
        """Append events that no caller's command id guards (records of reads, timer decisions)."""
        return self.store.append(stream_id, events, expected_version, self.context(principal))
