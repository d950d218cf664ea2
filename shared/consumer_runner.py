"""Runs one consumer (projection or reaction) over the logs it follows.

A consumer applies each event and moves its tracking position
``(consumer, upstream) -> position`` in the same transaction, so after a
crash it is never ahead of or behind what it has applied. Before anything
else, each event of another service is checked (``EventCheck``: hash
recomputed, producer's signature verified); one that fails is refused:
counted, logged, shown in ``health()``, and nothing else changes.
Redelivered events are recognised by position and skipped; a missing
stretch is pulled from the producer before the next event is applied; each
event must carry the hash of the one applied before it as its
``prev_hash``, so events of a replaced log are refused rather than applied
or skipped. An event that keeps failing is
parked in the dead-letter queue if the consumer may park it; otherwise the
consumer stalls on it and retries with growing back-off until it applies.
A projection can be rebuilt from the logs and compared with the live one by
checksum; a reaction never is (docs/architecture.md).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

from sqlalchemy import MetaData, bindparam, create_engine, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from shared.canonical import GENESIS_HASH
from shared.checksums import checksum
from shared.consumers import Consumer, as_envelope
from shared.dead_letters import DeadLetters
from shared.error_text import describe
from shared.errors import Conflict
from shared.eventstore.engine import write_transaction
from shared.eventstore.envelope import Envelope
from shared.eventstore.tables import dead_letters, projection_tracking
from shared.signing import EventCheck

log = logging.getLogger(__name__)

GAP_PAGE = 500
BATCH_ATTEMPTS = 3  # tries of a batch that another replica keeps overtaking
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0

FetchSince = Callable[[str, int, int], list[dict[str, Any]]]

# Built once: every event runs them, and a statement object keeps its compiled cache key.
_tracking = projection_tracking.c
MOVE_TRACKING = update(projection_tracking).where(
    _tracking.projection == bindparam("consumer"), _tracking.upstream == bindparam("of_upstream"),
    _tracking.position == bindparam("before"),
    or_(_tracking.hash == bindparam("prev_hash"), _tracking.hash.is_(None)),
).values(position=bindparam("to_position"), hash=bindparam("to_hash"))
TRACKING_ROWS = select(_tracking.upstream, _tracking.position, _tracking.hash).where(
    _tracking.projection == bindparam("consumer"))
TRACKING_ROWS_FOR_UPDATE = TRACKING_ROWS.with_for_update()


class ConsumerGap(RuntimeError):
    """Events are missing before this one and the producer did not supply them."""


class UpstreamForked(RuntimeError):
    """An upstream event does not continue the chain already applied: its producer's log was replaced.

    Nothing more of that upstream is applied until ``crm rebuild`` rebuilds
    the projection from the log the producer holds now.
    """


class _ApplyFailed(Exception):
    """``Consumer.apply`` raised; the cause is the consumer's own error."""


@dataclass
class Stall:
    """An event a consumer may not park and could not apply yet: it is retried with back-off."""

    position: int
    event_type: str
    error: str
    attempts: int
    retries: int
    retry_at: float  # on the runner's monotonic clock

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"position": self.position, "type": self.event_type, "error": self.error,
                "attempts": self.attempts, "retry_in_seconds": round(max(self.retry_at - now, 0.0), 3)}


_locks: "weakref.WeakKeyDictionary[Engine, dict[str, threading.RLock]]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _consumer_lock(engine: Engine, name: str) -> threading.RLock:
    """One lock per consumer and database, shared by every runner of it in this process."""
    with _locks_guard:
        return _locks.setdefault(engine, {}).setdefault(name, threading.RLock())


class ConsumerRunner:
    """Applies events to one consumer, exactly once each and in position order.

    nameko runs handlers in parallel greenthreads and events may arrive out
    of order, so every call holds the consumer's lock; replicas in other
    processes are kept apart by the conditional tracking update, which also
    takes the tracking row's lock on PostgreSQL before anything is applied.
    ``fetch_since(upstream, after_position, limit)`` fills gaps; it usually
    calls the producer's ``events_since`` RPC. ``check`` decides which
    events are genuine; without one (tests of the runner itself) all are.
    """

    def __init__(self, engine: Engine, consumer: Consumer, fetch_since: FetchSince | None = None,
                 max_attempts: int = 3, clock: Callable[[], float] = time.monotonic,
                 check: EventCheck | None = None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine = engine
        self.consumer = consumer
        self.fetch_since = fetch_since
        self.check = check
        self.max_attempts = max_attempts
        self.dead_letters = DeadLetters(engine)
        self._clock = clock
        self._lock = _consumer_lock(engine, consumer.name)
        self._tracked: set[str] = set()
        self.forked: dict[str, str] = {}  # upstream -> why its events are refused, until a rebuild
        self.stalls: dict[str, Stall] = {}  # upstream -> the event this consumer is retrying
        self.refused: dict[str, dict[str, Any]] = {}  # upstream -> {count, last_reason, last_event_id}
        self.last_applied: dict[str, tuple[str, float]] = {}  # upstream -> (its recorded_at, our wall time)
        # upstream -> a position this replica saw applied; tracking only moves forward, but for a rebuild
        self._applied_through: dict[str, int] = {}

    # -- reading ------------------------------------------------------------

    def position(self, upstream: str) -> int:
        """The last position of ``upstream`` applied (or dead-lettered); 0 before the first."""
        with self.engine.connect() as connection:
            return self._positions(connection)[upstream]

    def positions(self) -> dict[str, int]:
        """``position`` of every upstream (for ``health()``)."""
        with self.engine.connect() as connection:
            return self._positions(connection)

    def stalled(self) -> dict[str, dict[str, Any]]:
        """The events being retried, by upstream (for ``health()``)."""
        now = self._clock()
        return {upstream: stall.to_dict(now) for upstream, stall in self.stalls.items()}

    def due_retries(self) -> list[str]:
        """Upstreams whose stalled event is due for its next try."""
        now = self._clock()
        return [upstream for upstream, stall in self.stalls.items() if stall.retry_at <= now]

    # -- following ----------------------------------------------------------

    def handle(self, upstream: str, envelope: Envelope | Mapping[str, Any]) -> str:
        """Apply one event: ``"applied"``, ``"duplicate"``, ``"dead_lettered"``, ``"stalled"`` or ``"refused"``.

        ``"refused"`` means the event is not genuine (see ``refuse``).
        ``"stalled"`` means the consumer is waiting to retry an earlier or
        this event; its tracking has not moved, so the event comes again.
        Raises ``ConsumerGap`` when earlier events are missing and
        ``fetch_since`` cannot supply them, and ``UpstreamForked`` when the
        event does not chain onto the last one applied; nothing is applied then.
        """
        envelope = as_envelope(envelope)
        if upstream not in self.consumer.upstreams:
            raise ValueError(f"{self.consumer.name} follows {self.consumer.upstreams}, not {upstream!r}")
        if envelope.position < self._applied_through.get(upstream, 0):
            return "duplicate"  # settled without a read or a signature check: a backlog's deliveries are cheap
        if self._refused(upstream, envelope):
            return "refused"
        with self._lock:
            self._ensure_tracking(upstream)
            if self._next_in_line(upstream, envelope):
                try:  # the tracking update is conditional: it finds duplicates and forks itself
                    return self._apply_with_retries(upstream, envelope)
                except ConsumerGap:
                    pass  # tracking went back (a rebuild): read it and fill the gap below
            with self.engine.connect() as connection:
                last, last_hash = self._tracking_rows(connection)[upstream]
            self._applied_through[upstream] = last
            if envelope.position <= last:
                if envelope.position == last and last_hash not in (None, envelope.hash):
                    raise self._forked(upstream, envelope)
                return "duplicate"
            if self._waiting(upstream):
                return "stalled"
            if envelope.position > last + 1:
                if not self._fill_gap(upstream, last, envelope.position):
                    return "stalled"
                if self.position(upstream) >= envelope.position:
                    return "applied"  # with the page that filled the gap
            return self._apply_with_retries(upstream, envelope)

    def catch_up(self, upstream: str, events: Iterable[Envelope | Mapping[str, Any]]) -> dict[str, int]:
        """Apply a sequence (e.g. ``store.iter_since(runner.position(service))``); counts per outcome.

        Contiguous events are applied a batch per transaction, checked at the
        cost of one signature (``EventCheck.vouched``); what is not next in
        line, not vouched for, or holds a failing event goes to ``handle``
        event by event, which checks each, fills gaps, skips duplicates and
        parks poison. A stall ends the catch-up: what follows waits for the retry.
        """
        outcomes: Counter[str] = Counter()
        for batch in _batches(map(as_envelope, events), self.consumer.catch_up_batch):
            rest = self._apply_next_in_line(upstream, batch, outcomes)
            if rest is None:
                break
            for envelope in rest:
                outcome = self.handle(upstream, envelope)
                outcomes[outcome] += 1
                if outcome == "stalled":
                    return dict(outcomes)
        return dict(outcomes)

    def _apply_next_in_line(self, upstream: str, batch: list[Envelope],
                            outcomes: Counter[str]) -> list[Envelope] | None:
        """Apply what of ``batch`` is next in line in one transaction; return what is left to take one by one.

        Events at or below the tracked position are counted as duplicates:
        an earlier delivery, or another replica, applied them. When another
        replica moves the tracking between the read and the write, the batch
        is trimmed and tried again, so replicas sharing a backlog each apply
        whole batches. Returns ``None`` while the consumer waits on a stall.
        """
        with self._lock:
            self._ensure_tracking(upstream)
            if self._waiting(upstream):
                return None
            for _attempt in range(BATCH_ATTEMPTS):
                with self.engine.connect() as connection:
                    last, last_hash = self._tracking_rows(connection)[upstream]
                if any(envelope.position == last and last_hash not in (None, envelope.hash) for envelope in batch):
                    return batch  # ``handle`` says which log forked
                fresh = [envelope for envelope in batch if envelope.position > last]
                if len(fresh) < len(batch):
                    outcomes["duplicate"] += len(batch) - len(fresh)
                batch = fresh
                if not batch:
                    return []
                if batch[0].position != last + 1 or not (self.check is None or self.check.vouched(upstream, batch)):
                    return batch
                if self._apply_batch(upstream, batch):
                    outcomes["applied"] += len(batch)
                    return []
            return batch

    def _next_in_line(self, upstream: str, envelope: Envelope) -> bool:
        """Whether ``envelope`` follows what this replica last applied, with no stall pending: in-order delivery.

        Such an event skips the read of the tracking row.
        """
        applied = self._applied_through.get(upstream)
        return applied is not None and envelope.position == applied + 1 and upstream not in self.stalls

    def _waiting(self, upstream: str) -> bool:
        """Whether ``upstream`` is stalled and its next try is not due yet."""
        stall = self.stalls.get(upstream)
        return stall is not None and stall.retry_at > self._clock()

    def refuse(self, upstream: str, event_id: str | None, reason: str) -> str:
        """Count and log an event of ``upstream`` that is not genuine; nothing else changes.

        No tracking moves and nothing is parked or marked forked, so the
        genuine event at the same position still applies when it comes.
        """
        entry = self.refused.setdefault(upstream, {"count": 0, "last_reason": None, "last_event_id": None})
        entry.update(count=entry["count"] + 1, last_reason=reason, last_event_id=event_id)
        log.warning("%s refused %s event %s: %s", self.consumer.name, upstream, event_id, reason)
        return "refused"

    def _refused(self, upstream: str, envelope: Envelope) -> str | None:
        """Why ``envelope`` is not genuine, counted as refused; ``None`` if it is."""
        reason = self.check.refusal(upstream, envelope) if self.check is not None else None
        if reason is not None:
            self.refuse(upstream, envelope.event_id, reason)
        return reason

    def _apply_batch(self, upstream: str, batch: list[Envelope]) -> bool:
        """Apply a contiguous batch and move tracking over it in one transaction; False if nothing was applied."""
        first, last = batch[0].position, batch[-1].position
        if last - first + 1 != len(batch) or any(
                later.prev_hash != earlier.hash for earlier, later in itertools.pairwise(batch)):
            return False
        try:
            for envelope in batch:
                self.consumer.act(envelope)
            with write_transaction(self.engine) as connection, connection.begin():
                if not self._move_tracking(connection, upstream, batch[0], batch[-1]):
                    raise _ApplyFailed("batch is not next in line")
                self.consumer.apply_batch(connection, batch)
        except Exception:  # noqa: BLE001 - rolled back; the event-by-event path sorts it out
            return False
        self.stalls.pop(upstream, None)
        self._note_applied(upstream, batch[-1])
        return True

    def apply_untracked(self, envelope: Envelope | Mapping[str, Any], *,
                        also: Callable[[Connection], None] | None = None) -> None:
        """Apply one event outside the tracked stream: a dead letter being retried.

        There is no gap or duplicate check, because tracking already moved
        past the event. ``also(connection)`` runs in the same transaction, so
        the caller's bookkeeping commits or rolls back with the apply; errors
        propagate.
        """
        envelope = as_envelope(envelope)
        with self._lock, write_transaction(self.engine) as connection, connection.begin():
            self.consumer.apply(connection, envelope)
            if also is not None:
                also(connection)

    def _fill_gap(self, upstream: str, last: int, before: int) -> bool:
        """Pull pages of the producer's log after ``last`` and apply them until ``before`` is next in line.

        A page is applied as a batch where it can be, also past ``before``:
        a consumer that finds a gap is usually behind by more than one event.
        False if an event stalled (the rest wait for its retry).
        """
        while last + 1 < before:
            page = [as_envelope(event) for event in self.fetch_since(upstream, last, GAP_PAGE)] \
                if self.fetch_since else []
            if not page or page[0].position != last + 1:
                raise ConsumerGap(f"{self.consumer.name} has applied {upstream} up to {last} and got "
                                  f"{before}, but the producer did not supply {last + 1}")
            for event in self._apply_next_in_line(upstream, page, Counter()) or ():
                reason = self._refused(upstream, event)
                if reason is not None:
                    raise ConsumerGap(f"{self.consumer.name} could not fill the {upstream} gap: the event "
                                      f"supplied for position {event.position} was refused ({reason})")
                if self._apply_with_retries(upstream, event) == "stalled":
                    return False
            last = self.position(upstream)
        return True

    def _apply_with_retries(self, upstream: str, envelope: Envelope) -> str:
        stall = self.stalls.get(upstream)
        attempts = 1 if stall is not None and stall.position == envelope.position else self.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                outcome = self._apply_tracked(upstream, envelope)
            except _ApplyFailed as failed:
                error = failed.__cause__
                log.warning("%s failed %s %s at position %d (attempt %d of %d): %s", self.consumer.name,
                            upstream, envelope.type, envelope.position, attempt, attempts, describe(error))
                continue
            if stall is not None:
                log.info("%s applied %s %s at position %d after %d failed attempts", self.consumer.name,
                         upstream, envelope.type, envelope.position, stall.attempts)
            self.stalls.pop(upstream, None)
            return outcome
        if self.consumer.may_park(envelope):
            return self._dead_letter(upstream, envelope, error)
        return self._stall(upstream, envelope, error, attempts)

    def _apply_tracked(self, upstream: str, envelope: Envelope) -> str:
        """Advance tracking and apply in one transaction: both happen or neither.

        A reaction's effect (``Consumer.act``) runs first, outside the
        transaction; it is idempotent, so a retry or a crash before the
        tracking commits only repeats what is already done.
        """
        try:
            self.consumer.act(envelope)
        except Exception as error:
            raise _ApplyFailed() from error
        with write_transaction(self.engine) as connection, connection.begin():
            if not self._advance(connection, upstream, envelope):
                return "duplicate"
            try:
                self.consumer.apply(connection, envelope)
            except Exception as error:
                raise _ApplyFailed() from error  # leaving the block rolls back
        self._note_applied(upstream, envelope)
        return "applied"

    def _note_applied(self, upstream: str, envelope: Envelope) -> None:
        """Remember when the last event of ``upstream`` was recorded and applied (for ``health()``)."""
        self.last_applied[upstream] = (envelope.recorded_at, time.time())
        self._applied_through[upstream] = max(self._applied_through.get(upstream, 0), envelope.position)

    def _dead_letter(self, upstream: str, envelope: Envelope, error: BaseException) -> str:
        """Park the event and move past it in one transaction, so the stream goes on."""
        log.error("%s dead-lettered %s %s at position %d after %d attempts: %s", self.consumer.name, upstream,
                  envelope.type, envelope.position, self.max_attempts, describe(error))
        with write_transaction(self.engine) as connection, connection.begin():
            if not self._advance(connection, upstream, envelope):
                return "duplicate"
            self.dead_letters.record(self.consumer.name, upstream, envelope, describe(error),
                                     self.max_attempts, connection=connection)
        return "dead_lettered"

    def _stall(self, upstream: str, envelope: Envelope, error: BaseException, attempts: int) -> str:
        """Keep the event (tracking stays before it) and schedule its next try, later each time."""
        earlier = self.stalls.get(upstream)
        same = earlier is not None and earlier.position == envelope.position
        retries = earlier.retries + 1 if same else 0
        delay = min(FIRST_RETRY_SECONDS * 2 ** retries, MAX_RETRY_SECONDS)
        stall = Stall(envelope.position, envelope.type, describe(error),
                      (earlier.attempts if same else 0) + attempts, retries, self._clock() + delay)
        self.stalls[upstream] = stall
        log.error("%s could not apply %s %s at position %d (%d attempts); it is never parked, "
                  "next try in %.1f s: %s", self.consumer.name, upstream, envelope.type, envelope.position,
                  stall.attempts, delay, stall.error)
        return "stalled"

    # -- tracking -----------------------------------------------------------

    def _advance(self, connection: Connection, upstream: str, envelope: Envelope) -> bool:
        """Move tracking onto ``envelope``; False if it is there already.

        The update is conditional and comes first in the transaction: a
        replica that loses the race waits on the row and then finds the
        position taken, before it has applied anything.
        """
        if self._move_tracking(connection, upstream, envelope, envelope):
            return True
        current, _hash = self._tracking_rows(connection)[upstream]
        if current >= envelope.position:
            return False
        if current == envelope.position - 1:
            raise self._forked(upstream, envelope)
        raise ConsumerGap(f"{self.consumer.name} is at {upstream} position {current}, "
                            f"cannot apply {envelope.position}")

    def _move_tracking(self, connection: Connection, upstream: str, first: Envelope, last: Envelope) -> bool:
        """UPDATE tracking onto ``last`` if it stands just before ``first`` and ``first`` chains onto it."""
        moved = connection.execute(MOVE_TRACKING, {
            "consumer": self.consumer.name, "of_upstream": upstream, "before": first.position - 1,
            "prev_hash": first.prev_hash, "to_position": last.position, "to_hash": last.hash})
        return moved.rowcount == 1

    def _forked(self, upstream: str, envelope: Envelope) -> UpstreamForked:
        error = UpstreamForked(
            f"{self.consumer.name} has applied {upstream} events that the {upstream} event at position "
            f"{envelope.position} ({envelope.event_id}) does not continue in the hash chain: the {upstream} "
            "log was replaced; rebuild this projection (`crm rebuild`) from the log it holds now")
        log.error("%s", error)
        self.forked[upstream] = str(error)
        return error

    def _ensure_tracking(self, upstream: str) -> None:
        """Create the tracking row at 0, so ``_advance`` always has a row to move."""
        if upstream in self._tracked:
            return
        try:
            with write_transaction(self.engine) as connection, connection.begin():
                if upstream not in self._tracking_rows(connection):
                    connection.execute(insert(projection_tracking).values(
                        projection=self.consumer.name, upstream=upstream, position=0, hash=GENESIS_HASH))
        except IntegrityError:
            pass  # another replica created it
        self._tracked.add(upstream)

    def _positions(self, connection: Connection, for_update: bool = False) -> dict[str, int]:
        return self._positions_in(self._tracking_rows(connection, for_update))

    def _positions_in(self, tracked: Mapping[str, tuple[int, str | None]]) -> dict[str, int]:
        """The position of every upstream in ``tracked`` rows, 0 before its first event."""
        return {upstream: tracked.get(upstream, (0, None))[0] for upstream in self.consumer.upstreams}

    def _tracking_rows(self, connection: Connection, for_update: bool = False) -> dict[str, tuple[int, str | None]]:
        """``upstream -> (position, hash of the event there)`` for the upstreams tracked so far."""
        query = TRACKING_ROWS_FOR_UPDATE if for_update else TRACKING_ROWS
        return {upstream: (position, chain_hash) for upstream, position, chain_hash
                in connection.execute(query, {"consumer": self.consumer.name})}

    # -- rebuilding ---------------------------------------------------------

    def rebuild(self, source: Callable[[str], Iterable[Envelope | Mapping[str, Any]]]) -> dict[str, Any]:
        """Replay the logs into a scratch copy, compare checksums, repair the live tables if they differ.

        ``source(upstream)`` yields that upstream's events from the start
        (e.g. ``lambda _: store.iter_since(0)``). The copy is rebuilt up to the
        live positions captured at the start, so both sides cover the same
        events. A copy that parked or stalled on any event is incomplete, so
        it never replaces the live tables: the answer says why. Holding the
        lock keeps this process's handlers out; a repair refuses
        (``Conflict``) if another replica moved the projection meanwhile.
        """
        if not self.consumer.rebuildable:
            raise ValueError(f"{self.consumer.name} is a reaction: its effects are never run again")
        metadata = self.consumer.metadata
        with self._lock:
            live_tracking, live_checksum = self._snapshot(metadata)
            positions = self._positions_in(live_tracking)
            scratch = _scratch_engine(metadata)
            try:
                replay = ConsumerRunner(scratch, self.consumer, max_attempts=self.max_attempts, clock=self._clock,
                                        check=self.check)
                outcomes = replay._replay(source, positions)
                with scratch.connect() as connection:
                    rebuilt_checksum = checksum(connection, metadata)
                    rebuilt_tracking = replay._tracking_rows(connection)
                equal = live_checksum == rebuilt_checksum
                same_chain = all(live_hash in (None, rebuilt_tracking.get(upstream, (0, GENESIS_HASH))[1])
                                 for upstream, (_position, live_hash) in live_tracking.items())
                refused = _incomplete(outcomes, replay)
                repaired = not (equal and same_chain) and refused is None
                if repaired:
                    self._replace_with(scratch, positions)
                    self._applied_through.clear()  # a replaced upstream log may be shorter
                    log.warning("%s differed from its rebuild (%s) and was repaired", self.consumer.name,
                                "its rows" if not equal else "the upstream hash chain")
                if refused is None:
                    self.forked.clear()
                else:
                    log.error("%s was not repaired: %s", self.consumer.name, refused)
            finally:
                scratch.dispose()
        return {"projection": self.consumer.name, "events": sum(outcomes.values()),
                "dead_lettered": outcomes.get("dead_lettered", 0), "stalled": outcomes.get("stalled", 0),
                "positions": positions, "live_checksum": live_checksum, "rebuilt_checksum": rebuilt_checksum,
                "equal": equal, "same_chain": same_chain, "repaired": repaired, "refused": refused}

    def _replay(self, source: Callable[[str], Iterable[Envelope | Mapping[str, Any]]],
                positions: Mapping[str, int]) -> dict[str, int]:
        """Apply every upstream's events up to ``positions``, merged by ``recorded_at``.

        Live events arrive interleaved across upstreams; merging by the time
        each was recorded is the closest reproducible order.
        """
        logs = [_log_upto(upstream, source(upstream), last) for upstream, last in positions.items() if last > 0]
        outcomes: Counter[str] = Counter()
        for upstream, envelope in heapq.merge(*logs, key=lambda item: item[1].recorded_at):
            outcomes[self.handle(upstream, envelope)] += 1
        return dict(outcomes)

    def _snapshot(self, metadata: MetaData) -> tuple[dict[str, tuple[int, str | None]], str]:
        """Tracking and checksum read from one consistent state of the live tables."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                return self._tracking_rows(connection), checksum(connection, metadata)

    def _replace_with(self, scratch: Engine, captured: dict[str, int]) -> None:
        """Copy the rebuilt rows and tracking over the live ones in one transaction."""
        tables = self.consumer.metadata.sorted_tables
        with write_transaction(self.engine) as live, live.begin(), scratch.connect() as copy:
            if self._positions(live, for_update=True) != captured:
                raise Conflict(f"{self.consumer.name} moved on during the rebuild (another replica "
                               "applied events); run the rebuild again")
            for table in reversed(tables):
                live.execute(delete(table))
            for table in tables:
                for rows in copy.execute(select(table)).mappings().partitions(1000):
                    live.execute(insert(table), [dict(row) for row in rows])
            live.execute(delete(projection_tracking).where(projection_tracking.c.projection == self.consumer.name))
            rebuilt = copy.execute(select(projection_tracking).where(
                projection_tracking.c.projection == self.consumer.name)).mappings()
            live.execute(insert(projection_tracking), [dict(row) for row in rebuilt])


def _incomplete(outcomes: Mapping[str, int], replay: ConsumerRunner) -> str | None:
    """Why a rebuilt copy may not replace the live tables, or ``None`` if it may."""
    if replay.refused:
        where = ", ".join(f"{upstream} {entry['last_event_id']}: {entry['last_reason']}"
                          for upstream, entry in replay.refused.items())
        return f"the rebuild refused events that are not genuine ({where}); the live projection is left as it is"
    if outcomes.get("dead_lettered"):
        letters = replay.dead_letters.list()
        where = ", ".join(f"{letter['upstream']} {letter['type']} at {letter['position']}: {letter['error']}"
                          for letter in letters[:3])
        return (f"the rebuild could not apply {outcomes['dead_lettered']} event(s) ({where}); "
                "the live projection is left as it is")
    if outcomes.get("stalled") or replay.stalls:
        stall = next(iter(replay.stalls.values()))
        return (f"the rebuild could not apply {stall.event_type} at {stall.position} ({stall.error}); "
                "the live projection is left as it is")
    return None


def _batches(events: Iterable[Envelope], size: int) -> Iterator[list[Envelope]]:
    batch: list[Envelope] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _log_upto(upstream: str, events: Iterable[Envelope | Mapping[str, Any]],
              last: int) -> Iterator[tuple[str, Envelope]]:
    for envelope in map(as_envelope, events):
        if envelope.position > last:
            return
        yield upstream, envelope


def _scratch_engine(metadata: MetaData) -> Engine:
    """An in-memory SQLite database with the projection's tables and tracking.

    ``StaticPool`` hands out one connection; otherwise every checkout would
    open a new, empty in-memory database.
    """
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False},
                           hide_parameters=True)
    projection_tracking.metadata.create_all(engine, tables=[projection_tracking, dead_letters])
    metadata.create_all(engine)
    return engine
