"""The append-only event log of one service (docs/architecture.md, "The event log").

Positions are claimed by the writer as head + 1 under the table's primary
key: a writer can only claim N + 1 after it has seen N committed, so
positions follow commit order and a reader that has seen N never later
finds a new event below N. ``(stream_id, stream_version)`` is unique, which
is the optimistic-concurrency check. ``appending`` holds the two ways in
(SQLite and PostgreSQL); this module is the API and the reading side.

Reads and verification run on raw DBAPI cursors over keyset pages: each
page is one short query (no transaction stays open, the whole log is
never in memory), and rows become envelopes without SQLAlchemy's per-row
machinery, which used to cost more than the read itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import event, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.canonical import GENESIS_HASH, canonical_json
from shared.eventstore.appending import (ENVELOPE_COLUMNS, MAX_APPEND_ATTEMPTS, SELECT_HEAD,
                                         SELECT_STREAM_VERSION, Appended, Command, CommandRecord,
                                         CommandRepeated, writer_for)
from shared.eventstore.engine import create_store_engine, paramstyle, pooled_cursor
from shared.eventstore.envelope import (CommandContext, Envelope, NewEvent, envelope_from_row, hash_input,
                                        parse_json, utc_now_iso)
from shared.eventstore.tables import RELAY_CHECKPOINT, command_results, events
from shared.eventstore.upcasting import Upcasters
from shared.signing import EventSigner, ServiceKeys

__all__ = ["Appended", "CommandRecord", "CommandRepeated", "EventStore", "MAX_APPEND_ATTEMPTS", "READ_PAGE",
           "RecordedCommand", "VerifyReport"]

log = logging.getLogger(__name__)

READ_PAGE = 2000
SIGNATURE_SAMPLE = 1000  # verify checks the signature of every this-many-th event, and of the last
_HEAD_RECORDED = "SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1"
_ENVELOPES = f"SELECT {', '.join(ENVELOPE_COLUMNS)} FROM events"
_POSITION_IN_ENVELOPE = ENVELOPE_COLUMNS.index("position")
_TYPE, _SCHEMA_VERSION, _ACTOR, _DATA = (ENVELOPE_COLUMNS.index(name)
                                         for name in ("type", "schema_version", "actor", "data"))
# The stored hash and signature, then the hashed columns in canonical JSON's
# (sorted) key order, which is the order of hash_input's parameters.
_UNHASHED = ("hash", "signature")
_CHAIN_COLUMNS = (*_UNHASHED, *sorted(column for column in ENVELOPE_COLUMNS if column not in _UNHASHED))
_CHAIN = f"SELECT {', '.join(_CHAIN_COLUMNS)} FROM events"
_HASHED_IN_CHAIN = len(_UNHASHED)
_POSITION_IN_CHAIN, _PREV_HASH_IN_CHAIN = _CHAIN_COLUMNS.index("position"), _CHAIN_COLUMNS.index("prev_hash")


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_position: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "first_bad_position": self.first_bad_position, "reason": self.reason}


@dataclass(frozen=True)
class RecordedCommand:
    """A command id as the log remembers it: what it ran with, and what it answered."""

    fingerprint: str | None
    result: dict[str, Any]


class EventStore:
    """One service's log: appends serialised in this process, reads from any thread.

    ``signer`` is the service that owns the log: it signs every event
    appended. ``service_keys`` are the public keys ``verify`` accepts for the
    service (its current and earlier keys while one is rotated); by default,
    the signer's own. ``open`` makes the engine (schema migrated) and
    ``close`` disposes of it; a store built on an existing engine leaves the
    engine to its owner.
    """

    def __init__(self, engine: Engine, signer: EventSigner, upcasters: Upcasters | None = None,
                 service_keys: ServiceKeys | None = None):
        self.engine = engine
        self.service = signer.service
        self.signer = signer
        self.service_keys = service_keys if service_keys is not None else ServiceKeys.of(signer)
        self.upcasters = upcasters if upcasters is not None else Upcasters()  # the caller may add steps later
        self._writer = writer_for(engine)
        self._write_lock = threading.Lock()
        self._listeners: list[Callable[[list[Envelope]], None]] = []
        self._owns_engine = False
        self._sql = _Statements(engine)
        _release_writer_on_dispose(engine, self)

    @classmethod
    def open(cls, url: str, signer: EventSigner, upcasters: Upcasters | None = None,
             service_keys: ServiceKeys | None = None) -> "EventStore":
        store = cls(create_store_engine(url, signer.service), signer, upcasters, service_keys)
        store._owns_engine = True
        return store

    def close(self) -> None:
        """Release the writer's connection, and the engine if ``open`` made it."""
        self._release_writer()
        if self._owns_engine:
            self.engine.dispose()

    def _release_writer(self) -> None:
        with self._write_lock:
            self._writer.close()

    def on_append(self, listener: Callable[[list[Envelope]], None]) -> None:
        """Call ``listener`` with the new envelopes after each commit (wakes followers)."""
        self._listeners.append(listener)

    # -- writing -----------------------------------------------------------

    def append(self, stream_id: str, new_events: Sequence[NewEvent], expected_version: int | None,
               context: CommandContext, *, record: CommandRecord | None = None) -> Appended:
        """Append one command's events atomically, with the hash chain.

        ``expected_version`` is the stream version the command decided on
        (0 for a new stream); ``None`` appends after whatever is there; any
        other version the stream is not at raises ``Conflict`` and writes
        nothing. With ``record`` the command's id, fingerprint and result
        are stored in the same transaction; an id already stored raises
        ``CommandRepeated`` and writes nothing.
        """
        if not new_events:
            raise ValueError("a command must append at least one event")
        command = Command(self.signer, stream_id, new_events, expected_version, context, record)
        with self._write_lock:
            sealed = self._writer.append(command)
        self._notify(sealed.appended.envelopes)
        return sealed.appended

    def record_command(self, command_id: str, fingerprint: str, result: dict[str, Any]) -> None:
        """Store the result of a command that appended nothing (it found nothing to change).

        Raises ``CommandRepeated`` if the id is stored already.
        """
        row = {"command_id": command_id, "result": canonical_json(result), "recorded_at": utc_now_iso(),
               "fingerprint": fingerprint}
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(command_results), row)
        except IntegrityError as error:
            raise CommandRepeated(command_id) from error

    def _notify(self, envelopes: list[Envelope]) -> None:
        """Tell listeners; the append has committed, so their failures are only logged."""
        for listener in self._listeners:
            try:
                listener(envelopes)
            except Exception:
                log.exception("on_append listener %r failed", listener)

    # -- reading -----------------------------------------------------------

    def recorded_command(self, command_id: str) -> RecordedCommand | None:
        """What an earlier command with this id ran with and answered, if one ran."""
        rows = self._fetch(self._sql.recorded_command, (command_id,))
        return RecordedCommand(rows[0][0], json.loads(rows[0][1])) if rows else None

    def stream_version(self, stream_id: str, connection: Connection | None = None) -> int:
        """The stream's last version, 0 if it has none (inside ``connection``'s transaction if given)."""
        if connection is not None:
            return connection.execute(select(func.coalesce(func.max(events.c.stream_version), 0))
                                      .where(events.c.stream_id == stream_id)).scalar_one()
        return self._fetch(self._sql.stream_version, (stream_id,))[0][0]

    def read_stream(self, stream_id: str) -> list[Envelope]:
        return list(self._envelopes(self._fetch(self._sql.stream, (stream_id,))))

    def read_since(self, after_position: int, limit: int = READ_PAGE, *, upcast: bool = True) -> list[Envelope]:
        """Envelopes with position > ``after_position``, oldest first.

        ``upcast=False`` gives them as recorded, which is what other services
        get (relay, ``events_since``): their hash and signature cover that.
        """
        return list(self._envelopes(self._fetch(self._sql.envelopes_after, (after_position, limit)), upcast))

    def iter_since(self, after_position: int = 0) -> Iterator[Envelope]:
        """Every envelope after ``after_position``, page by page, never all in memory.

        Envelopes are made one at a time as the caller takes them: a replay
        that keeps none of them then keeps the garbage collector idle, which
        is a fifth of the time when a page's worth are alive at once.
        """
        for rows in self._pages(self._sql.envelopes_after, self._sql.envelopes_between,
                                _POSITION_IN_ENVELOPE, after_position):
            yield from self._envelopes(rows)

    def head_position(self) -> int:
        rows = self._fetch(SELECT_HEAD, ())
        return rows[0][0] if rows else 0

    def head(self) -> tuple[int, str | None]:
        """The last position and when its event was recorded; ``(0, None)`` for an empty log."""
        rows = self._fetch(_HEAD_RECORDED, ())
        return (rows[0][0], rows[0][1]) if rows else (0, None)

    def verify(self, from_position: int = 1, to_position: int | None = None, *,
               every_signature: bool = False) -> VerifyReport:
        """Recompute the hash chain and check signatures; report the first bad position and why.

        Catches an edited, deleted or reordered event anywhere before the
        head, and a chain recomputed by someone without the service's key.
        Every hash is recomputed; signatures are checked on every
        ``SIGNATURE_SAMPLE``-th event and on the last one (on all with
        ``every_signature``). A good signature vouches, through the chain,
        for every event before it; when one is bad (or the chain breaks), the
        events since the last good one are checked one by one, so the first
        bad signature is named exactly. A signature damaged on an event whose
        content is intact is found only with ``every_signature``. Events cut
        from the very end leave a shorter chain that is valid, so the head is
        also held against the relay's checkpoint: the broker has confirmed
        every event up to it, and a log whose head is below it lost events.
        The checkpoint is read first, so an append racing the check only adds
        events after it.
        """
        from_position = max(from_position, 1)
        published = self._fetch(self._sql.published, (RELAY_CHECKPOINT,))
        expected_prev = GENESIS_HASH
        if from_position > 1:
            rows = self._fetch(self._sql.hash_at, (from_position - 1,))
            if not rows:
                return VerifyReport(False, 0, from_position - 1, f"position {from_position - 1} is missing")
            expected_prev = rows[0][0]
        expected_position, checked = from_position, 0
        sha256 = hashlib.sha256
        signed_by, service = self.service_keys.signed_by, self.service
        sample = 1 if every_signature else SIGNATURE_SAMPLE
        unvouched: list[tuple] = []  # rows since the last good signature, oldest first
        for rows in self._pages(self._sql.chain_after, self._sql.chain_between, _POSITION_IN_CHAIN,
                                from_position - 1, to_position):
            for row in rows:
                position = row[_POSITION_IN_CHAIN]
                if position != expected_position:
                    broken = f"position {expected_position} is missing (next is {position})"
                elif row[_PREV_HASH_IN_CHAIN] != expected_prev:
                    broken = "prev_hash does not match the hash of the previous event"
                elif sha256(hash_input(*row[_HASHED_IN_CHAIN:]).encode()).hexdigest() != row[0]:
                    broken = "hash does not match the event's content"
                else:
                    broken = None
                if broken is not None:
                    return (self._first_bad_signature(unvouched, from_position)
                            or VerifyReport(False, checked, expected_position, broken))
                unvouched.append(row)
                if len(unvouched) == sample:
                    if not signed_by(service, row[0], row[1]):
                        return self._first_bad_signature(unvouched, from_position)
                    unvouched = []
                expected_prev = row[0]
                expected_position += 1
                checked += 1
        if unvouched and not signed_by(service, unvouched[-1][0], unvouched[-1][1]):
            return self._first_bad_signature(unvouched, from_position)
        published_up_to = published[0][0] if published else 0
        last = expected_position - 1
        if last < (published_up_to if to_position is None else min(published_up_to, to_position)):
            return VerifyReport(False, checked, last + 1,
                                f"events after position {last} are missing (published up to {published_up_to})")
        return VerifyReport(True, checked)

    def _first_bad_signature(self, rows: list[tuple], from_position: int) -> VerifyReport | None:
        """The report for the first of ``rows`` (chain rows) whose signature does not verify, if any."""
        for row in rows:
            if not self.service_keys.signed_by(self.service, row[0], row[1]):
                position = row[_POSITION_IN_CHAIN]
                return VerifyReport(False, position - from_position, position,
                                    "no signature" if row[1] is None else "bad signature")
        return None

    # -- rows to envelopes ---------------------------------------------------

    def _fetch(self, sql: str, parameters: Sequence[Any]) -> list[tuple]:
        with pooled_cursor(self.engine) as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def _pages(self, after_sql: str, between_sql: str, position_index: int, after_position: int,
               to_position: int | None = None) -> Iterator[list[tuple]]:
        """Keyset pages: each a short read, so no transaction stays open."""
        while True:
            if to_position is None:
                rows = self._fetch(after_sql, (after_position, READ_PAGE))
            else:
                rows = self._fetch(between_sql, (after_position, to_position, READ_PAGE))
            if not rows:
                return
            yield rows
            after_position = rows[-1][position_index]

    def _envelopes(self, rows: list[tuple], upcast: bool = True) -> Iterator[Envelope]:
        """Envelopes from rows in ``ENVELOPE_COLUMNS`` order, payloads parsed and (if ``upcast``) upcast.

        An actor acts many times in a page: its JSON is parsed once per page
        and each envelope gets its own copy, so no two envelopes share a dict.
        """
        lift = self.upcasters.upcast if upcast and self.upcasters else None
        actors: dict[str, dict[str, Any]] = {}
        for row in rows:
            actor = actors.get(row[_ACTOR])
            if actor is None:
                actor = actors[row[_ACTOR]] = parse_json(row[_ACTOR])
            version, data = row[_SCHEMA_VERSION], parse_json(row[_DATA])
            if lift is not None:
                version, data = lift(row[_TYPE], version, data)
            yield envelope_from_row(row, version, actor.copy(), data)


def _release_writer_on_dispose(engine: Engine, store: EventStore) -> None:
    """Whoever disposes the engine expects its connections closed, the writer's too.

    The listener holds the store weakly: the engine may outlive many stores.
    """
    release = weakref.WeakMethod(store._release_writer)

    def on_dispose(_engine: Engine) -> None:
        method = release()
        if method is not None:
            method()

    event.listen(engine, "engine_disposed", on_dispose)


class _Statements:
    """The store's read statements, in the driver's parameter style."""

    def __init__(self, engine: Engine):
        def sql(text: str) -> str:
            return paramstyle(engine, text)

        self.envelopes_after = sql(f"{_ENVELOPES} WHERE position > ? ORDER BY position LIMIT ?")
        self.envelopes_between = sql(f"{_ENVELOPES} WHERE position > ? AND position <= ? ORDER BY position LIMIT ?")
        self.stream = sql(f"{_ENVELOPES} WHERE stream_id = ? ORDER BY stream_version")
        self.chain_after = sql(f"{_CHAIN} WHERE position > ? ORDER BY position LIMIT ?")
        self.chain_between = sql(f"{_CHAIN} WHERE position > ? AND position <= ? ORDER BY position LIMIT ?")
        self.hash_at = sql("SELECT hash FROM events WHERE position = ?")
        self.published = sql("SELECT position FROM checkpoints WHERE name = ?")
        self.stream_version = sql(SELECT_STREAM_VERSION)
        self.recorded_command = sql("SELECT fingerprint, result FROM command_results WHERE command_id = ?")
