"""What follows an event log: projections (read models) and reactions (side effects).

Both are consumers: they take a producer's events in position order, each
exactly once, with their own tracking row. They differ in what a rebuild
and a failure may do to them:

* a **projection** only writes its own tables, so it can be dropped and
  rebuilt from the logs at any time; an event that keeps failing is parked
  in the dead-letter queue and the projection goes on;
* a **reaction** does something that must happen once per event (destroy a
  data key, schedule a callback, send a message); a rebuild never runs it
  again, and an event that fails is never parked: it is retried with
  back-off, and ``health()`` shows it, until it applies.

A consumer says which events it takes by decorating a method per event
type with ``@handles(upstream, event_type)``; its ``upstreams`` follow from
those, and so do the broker subscriptions of the service that runs it.
Events of other types still move its tracking, so positions stay contiguous.
A consumer that takes every event of every service (the audit ledger) sets
``every_service_but`` to its own service's name instead: its upstreams are
then every other service ``shared.discovery`` finds, and ``apply`` gets
every event.

A reaction whose effect is a command on its own service's log (schedule a
callback, file a linked complaint) marks that method ``@acts_on(upstream,
event_type)`` instead: the runner calls it *before* the transaction that
moves its tracking, with no connection, because an append takes the
database's write lock that the tracking transaction holds. The effect is
therefore at least once, and made exactly once by a command id derived from
the event id (``shared.commands.ReactionCommands``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, Mapping, Sequence

from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Connection

from shared.crypto import KeyRing
from shared.eventstore.envelope import Envelope

_REQUIRED_FIELDS = tuple(field.name for field in dataclasses.fields(Envelope)
                         if field.default is dataclasses.MISSING)

Handler = Callable[[Any, Connection, Envelope], None]


def handles(upstream: str, *event_types: str) -> Callable[[Handler], Handler]:
    """Mark a consumer method as the one that applies these event types of ``upstream``."""
    if not event_types:
        raise ValueError("name at least one event type")

    def mark(method: Handler) -> Handler:
        method.handled_events = (*getattr(method, "handled_events", ()),
                                 *((upstream, event_type) for event_type in event_types))
        return method

    return mark


def every_other_service(own: str) -> tuple[str, ...]:
    """Every service ``shared.discovery`` finds (installed and extra), but ``own``, in name order."""
    from shared.discovery import discovered_services  # discovery reads entry points: only when asked

    return tuple(sorted(set(discovered_services()) - {own}))


def acts_on(upstream: str, *event_types: str) -> Callable[[Callable[[Any, Envelope], None]], Callable]:
    """Mark a reaction method as the effect of these event types, run before the tracking transaction."""
    if not event_types:
        raise ValueError("name at least one event type")

    def mark(method: Callable[[Any, Envelope], None]) -> Callable:
        method.acted_events = (*getattr(method, "acted_events", ()),
                               *((upstream, event_type) for event_type in event_types))
        return method

    return mark


def as_envelope(value: Envelope | Mapping[str, Any]) -> Envelope:
    """An ``Envelope`` from one, or from its dict as it arrives over RPC (extra keys ignored).

    A dict without ``signature`` gives an unsigned envelope, which the
    consumers' check then refuses.
    """
    if isinstance(value, Envelope):
        return value
    return Envelope(**{name: value[name] for name in _REQUIRED_FIELDS}, signature=value.get("signature"))


class Consumer(abc.ABC):
    """Base of projections and reactions: a name, and one method per event type it takes.

    Subclasses set ``name`` (``"<service>.<what>"``, also its tracking key)
    and decorate their methods with ``@handles``. Each method gets the
    connection of the transaction that also moves the tracking row, so what
    it writes there commits exactly when the event counts as applied.
    """

    name: ClassVar[str]
    upstreams: ClassVar[tuple[str, ...]] = ()
    every_service_but: ClassVar[str | None] = None  # set: follow every other discovered service, every type
    catch_up_batch: ClassVar[int] = 200  # events per transaction, and per signature checked, when catching up
    rebuildable: ClassVar[bool]
    _handlers: ClassVar[dict[tuple[str, str], str]] = {}
    _effects: ClassVar[dict[tuple[str, str], str]] = {}

    def __init__(self, keys: KeyRing):
        self.keys = keys
        self.log: Any = None  # the service's EventLog, once ``bind`` gave it (effects run commands on it)

    def bind(self, log: Any) -> None:
        """Called by the service's ``EventLog`` once it is set up: effects run their commands on it."""
        self.log = log

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers, effects = dict(cls._handlers), dict(cls._effects)
        for attribute, value in vars(cls).items():
            for event in getattr(value, "handled_events", ()):
                handlers[event] = attribute
            for event in getattr(value, "acted_events", ()):
                effects[event] = attribute
        if effects and getattr(cls, "rebuildable", False):
            raise TypeError(f"{cls.__name__} is a projection: a rebuild replays it, so it may have no effects "
                            "(@acts_on); make the effect a Reaction")
        cls._handlers, cls._effects = handlers, effects
        if cls.every_service_but is not None:
            cls.upstreams = every_other_service(cls.every_service_but)
        else:
            cls.upstreams = tuple(sorted({upstream for upstream, _type in (*handlers, *effects)}))

    @classmethod
    def handled_events(cls) -> frozenset[tuple[str, str]]:
        """``(upstream, event type)`` pairs this consumer applies."""
        return frozenset(cls._handlers) | frozenset(cls._effects)

    def act(self, envelope: Envelope) -> None:
        """Run the effect of one event, if the consumer has one for it (before its tracking transaction)."""
        method = self._effects.get((envelope.service, envelope.type))
        if method is not None:
            getattr(self, method)(envelope)

    def apply(self, connection: Connection, envelope: Envelope) -> None:
        """Apply one event by its producer and type; events it does not take are ignored."""
        method = self._handlers.get((envelope.service, envelope.type))
        if method is not None:
            getattr(self, method)(connection, envelope)

    def apply_batch(self, connection: Connection, envelopes: Sequence[Envelope]) -> None:
        """Apply a contiguous, checked batch of one upstream in one transaction; a consumer may do it in bulk."""
        for envelope in envelopes:
            self.apply(connection, envelope)

    @abc.abstractmethod
    def may_park(self, envelope: Envelope) -> bool:
        """Whether an event that keeps failing may go to the dead-letter queue (else: retry with back-off)."""


class Projection(Consumer):
    """A read model: rebuilt at will, so nothing in it may have effects outside its own tables.

    Set ``metadata`` (its tables). Because a rebuild replays it on an
    in-memory SQLite copy and compares checksums across backends, keep to
    portable SQLAlchemy Core, text/int/bool columns (timestamps as ISO text)
    and keys taken from the domain (stream ids), not autoincrement counters.
    ``never_parked`` names event types that must apply however long it
    takes: an erasure parked would leave personal data in the read model.
    ``personal_data`` names the tables that hold PII in clear, so that what
    an erasure deleted from them also leaves the database files
    (``shared.erasure``).
    """

    metadata: ClassVar[MetaData]
    rebuildable = True
    never_parked: ClassVar[frozenset[str]] = frozenset()
    personal_data: ClassVar[tuple[Table, ...]] = ()  # tables holding PII in clear: scrubbed after an erasure

    def may_park(self, envelope: Envelope) -> bool:
        return envelope.type not in self.never_parked


class Reaction(Consumer):
    """A side effect per event: runs once, never on a rebuild, never parked.

    An effect written on the handler's connection commits with the tracking
    row, so it happens exactly once. An effect outside the database (a
    message, a call) is at least once: make it idempotent, e.g. with a
    command id derived from the event id.
    """

    rebuildable = False

    def may_park(self, envelope: Envelope) -> bool:
        return False
