"""The one path every command takes: idempotency, load, decide, seal, append.

A service describes each kind of aggregate once (``AggregateKind``: its
stream, its fold, how its events are sealed and what a command answers)
and declares a ``Repository`` for it. Its RPC methods then only validate,
check the caller's role and say what to decide::

    customers = Repository(CUSTOMER)

    def set_tier(self, *args, **kwargs):
        command = load_call(contract.SetTier(), args, kwargs)
        return self.customers.change(command["customer_id"], command,
                                     lambda customer: domain.decide_set_tier(customer, ...))

A command sent without a ``command_id`` takes its request's id
(``shared.rpc``), so a request the broker delivers twice runs once.

The order is what makes retries safe: a ``command_id`` is looked up before
anything is loaded, so a repeat gets the first answer even when the
aggregate has moved on since (or was erased); an id is bound to the method
and a fingerprint of the payload, so reusing it for anything else is a
``Conflict`` that changes nothing; and the events, the new version and the
stored answer commit in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from nameko.extensions import DependencyProvider

from shared.command_fingerprints import fingerprint
from shared.crypto import KeyRing
from shared.errors import Conflict, NotFound
from shared.event_log import EventLog, WorkerLog
from shared.eventstore.envelope import Envelope, NewEvent
from shared.eventstore.store import Appended, CommandRecord, CommandRepeated
from shared.rpc import REQUEST_ID_KEY

State = TypeVar("State")
Decide = Callable[[State], Sequence[NewEvent]]
Answer = Callable[[State, Appended | None], dict[str, Any]]


def _no_sealing(_keys: KeyRing, _state: Any, events: Sequence[NewEvent]) -> list[NewEvent]:
    return list(events)


def _version(state: Any) -> int:
    return state.version


@dataclass(frozen=True)
class AggregateKind(Generic[State]):
    """How a service finds, folds, seals and reports one kind of aggregate.

    ``fold(aggregate_id, envelopes)`` builds the state (pure);
    ``answer(state, appended)`` is what a command returns (``appended`` is
    ``None`` when it decided nothing); ``seal(keys, state, events)``
    encrypts the personal data of decided events before the log sees them;
    ``version_of(state)`` is the stream version the state was folded to (by
    default its ``version``), and an aggregate exists once it has one.
    """

    name: str
    stream_of: Callable[[str], str]
    fold: Callable[[str, Sequence[Envelope]], State]
    answer: Answer
    seal: Callable[[KeyRing, State, Sequence[NewEvent]], list[NewEvent]] = field(default=_no_sealing)
    version_of: Callable[[State], int] = field(default=_version)


class Repository(DependencyProvider, Generic[State]):
    """Gives workers the load and command path of one aggregate kind, on the service's ``EventLog``."""

    def __init__(self, kind: AggregateKind[State]):
        self.kind = kind

    def setup(self) -> None:
        logs = [dependency for dependency in self.container.dependencies if isinstance(dependency, EventLog)]
        if len(logs) != 1:
            raise TypeError(f"{self.container.service_name} needs exactly one EventLog for its "
                            f"{self.kind.name} repository, has {len(logs)}")
        self.event_log = logs[0]

    def get_dependency(self, worker_ctx) -> "Commands[State]":
        return Commands(self.kind, self.event_log.get_dependency(worker_ctx), worker_ctx)


class Commands(Generic[State]):
    """One worker's access to an aggregate kind: load it, or run a command on it.

    The caller is the principal that ``shared.auth.allow`` checked and put
    on the service instance; the method is the RPC entrypoint's name.
    """

    def __init__(self, kind: AggregateKind[State], worker_log: WorkerLog, worker_ctx):
        self.kind = kind
        self.log = worker_log
        self._worker_ctx = worker_ctx
        self._commands_run = 0

    # -- reading ------------------------------------------------------------

    def history(self, aggregate_id: str) -> tuple[State, list[Envelope]]:
        """The aggregate and the events it was folded from; ``NotFound`` if it never existed."""
        envelopes = self.log.store.read_stream(self.kind.stream_of(aggregate_id))
        state = self.kind.fold(aggregate_id, envelopes)
        if self.kind.version_of(state) == 0:
            raise NotFound(f"no {self.kind.name} {aggregate_id}")
        return state, envelopes

    def load(self, aggregate_id: str) -> State:
        return self.history(aggregate_id)[0]

    # -- commands -----------------------------------------------------------

    def create(self, aggregate_id: str, command: Mapping[str, Any], decide: Decide,
               answer: Answer | None = None) -> dict[str, Any]:
        """Start a new aggregate (its stream must be empty)."""
        return self._run(aggregate_id, command, decide, answer, must_exist=False)

    def change(self, aggregate_id: str, command: Mapping[str, Any], decide: Decide,
               answer: Answer | None = None) -> dict[str, Any]:
        """Decide on the aggregate as it is now; ``NotFound`` if it does not exist."""
        return self._run(aggregate_id, command, decide, answer, must_exist=True)

    def _run(self, aggregate_id: str, command: Mapping[str, Any], decide: Decide, answer: Answer | None,
             must_exist: bool) -> dict[str, Any]:
        answer = answer or self.kind.answer
        command_id = command.get("command_id") or self._implicit_command_id()
        call_print = fingerprint(self._worker_ctx.entrypoint.method_name, command,
                                 self.log.provider.fingerprint_key) if command_id else ""
        if command_id:
            earlier = self._earlier_answer(command_id, call_print)
            if earlier is not None:
                return earlier
        if must_exist:
            state = self.load(aggregate_id)
        else:
            state = self.kind.fold(aggregate_id, [])
        events = decide(state)
        if not events:
            return self._nothing_to_append(state, command_id, call_print, answer)
        sealed = self.kind.seal(self.log.keys, state, events)
        record = CommandRecord(command_id, call_print, lambda appended: answer(state, appended)) if command_id else None
        try:
            appended = self.log.store.append(self.kind.stream_of(aggregate_id), sealed, self.kind.version_of(state),
                                             self.log.context(self._principal()), record=record)
        except Conflict:
            earlier = self._earlier_answer(command_id, call_print) if command_id else None
            if earlier is not None:  # the same command ran beside this one and won
                return earlier
            raise
        return appended.result if record is not None else answer(state, appended)

    def _nothing_to_append(self, state: State, command_id: str | None, call_print: str,
                           answer: Answer) -> dict[str, Any]:
        """A command that found nothing to change still binds its id, so a retry answers the same."""
        result = answer(state, None)
        if command_id:
            try:
                self.log.store.record_command(command_id, call_print, result)
            except CommandRepeated:
                return self._earlier_answer(command_id, call_print) or result
        return result

    def _earlier_answer(self, command_id: str, call_print: str) -> dict[str, Any] | None:
        """The first answer under ``command_id``; ``Conflict`` if it was used for another call."""
        recorded = self.log.store.recorded_command(command_id)
        if recorded is None:
            return None
        if recorded.fingerprint != call_print:
            raise Conflict(f"command_id {command_id} was already used for another method or payload; "
                           "send a new command_id for a new command")
        return recorded.result

    def _implicit_command_id(self) -> str | None:
        """An id for a command sent without one: its request's, so a redelivered request runs once.

        The n-th command of a request on this kind of aggregate gets
        ``request:<id>:<kind>#<n>``: a redelivery runs the same commands in
        the same order, so each finds its own.
        """
        request_id = self._worker_ctx.data.get(REQUEST_ID_KEY)
        if not request_id:
            return None
        self._commands_run += 1
        return f"request:{request_id}:{self.kind.name}#{self._commands_run}"

    def _principal(self):
        return self._worker_ctx.service.principal


class _ReactionWork:
    """What the command path reads of a worker, for a command a reaction runs on an event."""

    def __init__(self, principal, method: str, envelope: Envelope):
        self.entrypoint = SimpleNamespace(method_name=method)
        self.service = SimpleNamespace(principal=principal)
        self.data = {"correlation_id": envelope.correlation_id}
        self.call_id = envelope.event_id  # the event caused the command
        self.call_id_stack: list[str] = []


class ReactionCommands(Commands[State]):
    """The command path for a reaction's effect (``shared.consumers.acts_on``): no RPC worker behind it.

    The command runs as ``principal`` (the service's own, role ``service``)
    under ``method``'s name, caused by ``envelope`` and in its correlation.
    Give it a ``command_id`` derived from the event (``reaction_command_id``):
    the effect is retried until its tracking commits, and a repeat then
    answers the first result and appends nothing.
    """

    def __init__(self, kind: AggregateKind[State], event_log: EventLog, principal, method: str, envelope: Envelope):
        work = _ReactionWork(principal, method, envelope)
        super().__init__(kind, event_log.get_dependency(work), work)


_DERIVED_COMMANDS = uuid.UUID("9a1f4c2e-7b3d-4e8a-b6c5-0d2e1f3a4b5c")


def derived_command_id(*parts: str) -> str:
    """A command id named by ``parts`` (an event, a batch and a customer, ...): short, and the same every time."""
    return f"derived:{uuid.uuid5(_DERIVED_COMMANDS, chr(31).join(parts))}"


def reaction_command_id(consumer_name: str, envelope: Envelope, *more: str) -> str:
    """The command id a reaction gives its effect on ``envelope`` (and ``more``): the same on every delivery and retry."""
    return derived_command_id("reaction", consumer_name, envelope.service, envelope.event_id, *more)
