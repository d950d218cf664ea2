"""How one command's events get into the log, per database.

Both backends give the same guarantees (docs/architecture.md, "The event log"):

* positions are head + 1, head + 2, ... in commit order with no gaps: a
  writer can only claim N + 1 after it has seen N committed, and the
  primary key lets only one writer have it;
* a command's events share one transaction, with its ``command_results``
  row when it has a ``command_id``;
* the stream must be exactly at ``expected_version`` (not behind it, which
  the unique ``(stream_id, stream_version)`` key refuses, nor ahead of it,
  which would leave a gap in the stream);
* each event carries the hash of the one before it, and its own hash
  signed by the appending service (``Command.seal``).

How they get there differs, because what is cheap differs. SQLite is in
the process: taking its write lock first (``BEGIN IMMEDIATE``) and then
reading the head costs microseconds and never races. PostgreSQL is a round
trip away and pays a commit flush per transaction, so the writer sends one
prepared statement per command in autocommit (atomic, one round trip) built
on the head it remembers; if another process moved the head, the primary key
refuses the stale position and the writer reloads the head and tries again.

Each writer holds one connection of its own for its lifetime: a pool
checkout per append costs more than the append on SQLite. The caller
(``EventStore``) serialises appends, so the connection is never shared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from shared.canonical import GENESIS_HASH, canonical_json
from shared.errors import Conflict
from shared.eventstore.engine import own_connection, paramstyle, translated, translated_errors
from shared.eventstore.envelope import (CommandContext, Envelope, NewEvent, actor_json, envelope_from_row,
                                        hash_input, new_id, utc_now_iso)

if TYPE_CHECKING:
    from shared.signing import EventSigner

MAX_APPEND_ATTEMPTS = 100

# One column order serves writing and reading: a row maps onto Envelope(*row).
ENVELOPE_COLUMNS = tuple(field.name for field in fields(Envelope))
INSERT_EVENTS = (f"INSERT INTO events ({', '.join(ENVELOPE_COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in ENVELOPE_COLUMNS)})")
INSERT_RESULT = ("INSERT INTO command_results (command_id, result, recorded_at, fingerprint) "
                 "VALUES (?, ?, ?, ?)")
SELECT_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
SELECT_STREAM_VERSION = "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?"

# Constraint names from migrations/versions/0001_event_store.py.
POSITION_KEY = "events_pkey"
STREAM_KEY = "uq_events_stream_version"
RESULT_KEY = "command_results_pkey"


@dataclass(frozen=True)
class Appended:
    """A command's events as the log holds them, and the result stored under its id (if it had one)."""

    stream_id: str
    version: int
    envelopes: list[Envelope]
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What a command with an id leaves beside its events, in the same transaction.

    ``fingerprint`` says which method and payload the id ran with;
    ``result(appended)`` computes what a repeat gets back. It may run more
    than once (a PostgreSQL writer that lost a race builds the events
    again), so it must only compute.
    """

    command_id: str
    fingerprint: str
    result: Callable[[Appended], dict[str, Any]]


@dataclass(slots=True)
class Command:
    """One command's append, as ``EventStore`` hands it to a writer; ``signer`` is the appending service."""

    signer: "EventSigner"
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | None
    context: CommandContext
    record: CommandRecord | None = None

    def check_version(self, current: int) -> None:
        """Refuse unless the stream is where the command decided it was."""
        if self.expected_version is not None and self.expected_version != current:
            raise stale_version(self.stream_id, self.expected_version, current)

    def seal(self, version: int, head: tuple[int, str]) -> "Sealed":
        """Place the events after ``version`` in the stream and ``head`` in the log, chain and sign them."""
        position, prev_hash = head
        service, sign = self.signer.service, self.signer.sign
        recorded_at = utc_now_iso()
        context = self.context
        actor_text = actor_json(context.actor_id, context.role)
        correlation_id, causation_id = context.correlation_id, context.causation_id
        rows, envelopes = [], []
        for event in self.events:
            position, version = position + 1, version + 1
            event_id, data_json = new_id(), canonical_json(event.data)
            occurred_at = event.occurred_at or recorded_at
            event_hash = hashlib.sha256(hash_input(
                actor_text, causation_id, correlation_id, data_json, event_id, occurred_at, position, prev_hash,
                recorded_at, event.schema_version, service, self.stream_id, version, event.type,
            ).encode()).hexdigest()
            row = (event_id, event.type, event.schema_version, service, self.stream_id, version, position,
                   occurred_at, recorded_at, actor_text, correlation_id, causation_id, data_json, prev_hash,
                   event_hash, sign(event_hash))
            rows.append(row)
            envelopes.append(envelope_from_row(row, event.schema_version, context.actor, event.data))
            prev_hash = event_hash
        appended = Appended(self.stream_id, version, envelopes)
        if self.record is not None:
            appended = Appended(self.stream_id, version, envelopes, self.record.result(appended))
        return Sealed(appended, rows, recorded_at)


@dataclass(slots=True)
class Sealed:
    """A command's events with positions and hashes, ready to insert."""

    appended: Appended
    rows: list[tuple]  # in ENVELOPE_COLUMNS order
    recorded_at: str

    @property
    def head(self) -> tuple[int, str]:
        last = self.appended.envelopes[-1]
        return last.position, last.hash

    def result_row(self, record: CommandRecord) -> tuple[str, str, str, str]:
        """The ``command_results`` row, in ``INSERT_RESULT``'s column order."""
        return record.command_id, canonical_json(self.appended.result), self.recorded_at, record.fingerprint


def stale_version(stream_id: str, expected_version: int, current: int | None = None) -> Conflict:
    where = f"is at version {current}" if current is not None else "has moved"
    return Conflict(f"stream {stream_id} {where}, not {expected_version}; "
                    "reload it and retry with its current version")


class CommandRepeated(Conflict):
    """The command id is already recorded: the command ran before (or is running beside this one)."""

    def __init__(self, command_id: str):
        super().__init__(f"command {command_id} has already run")
        self.command_id = command_id


def writer_for(engine: Engine) -> "SqliteWriter | PostgresWriter":
    """The writer for the engine's database (``create_store_engine`` allows only these two)."""
    return SqliteWriter(engine) if engine.dialect.name == "sqlite" else PostgresWriter(engine)


class SqliteWriter:
    """Appends inside ``BEGIN IMMEDIATE`` on a held connection (see module docstring)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._dbapi = engine.dialect.loaded_dbapi
        self._connection = None
        self._cursor = None

    def append(self, command: Command) -> Sealed:
        if self._connection is None or not self._connection.is_valid:
            self._connect()
        cursor = self._cursor
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                sealed = self._write(cursor, command)
                cursor.execute("COMMIT")
            except BaseException:
                if self._connection.dbapi_connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
        except self._dbapi.Error as error:
            raise translated(self.engine, error, self._connection) from error
        return sealed

    def _write(self, cursor: Any, command: Command) -> Sealed:
        head = cursor.execute(SELECT_HEAD).fetchone() or (0, GENESIS_HASH)
        current = cursor.execute(SELECT_STREAM_VERSION, (command.stream_id,)).fetchone()[0]
        command.check_version(current)
        sealed = command.seal(current, head)
        cursor.executemany(INSERT_EVENTS, sealed.rows)
        if command.record is not None:
            try:
                cursor.execute(INSERT_RESULT, sealed.result_row(command.record))
            except self._dbapi.IntegrityError as error:
                raise CommandRepeated(command.record.command_id) from error
        return sealed

    def _connect(self) -> None:
        self.close()
        self._connection = own_connection(self.engine)
        self._cursor = self._connection.dbapi_connection.cursor()

    def close(self) -> None:
        connection, self._connection, self._cursor = self._connection, None, None
        if connection is not None:
            connection.close()


# PostgreSQL's append is one prepared statement per command. Its events come
# as one parameter per column: scalars for the usual single event (as cheap
# as a plain INSERT), arrays for several (one statement for any number). The
# guard refuses an expected version the stream has not reached; the unique
# key refuses one it has passed.
_COLUMN_TYPES = [{"schema_version": "integer", "stream_version": "integer",
                  "position": "bigint"}.get(column, "text") for column in ENVELOPE_COLUMNS]
_EVENT_PARAMETERS = ", ".join(f"${number}" for number in range(3, 3 + len(ENVELOPE_COLUMNS)))
_RESULT_PARAMETER = 3 + len(ENVELOPE_COLUMNS)  # then the command_results columns


def _prepare_append(name: str, one_event: bool, with_result: bool) -> tuple[str, str]:
    """``PREPARE`` text of one variant of the append, and the ``EXECUTE`` that runs it."""
    types = ["text", "integer", *(_COLUMN_TYPES if one_event else [f"{kind}[]" for kind in _COLUMN_TYPES])]
    source = f"SELECT {_EVENT_PARAMETERS}" if one_event else f"SELECT * FROM unnest({_EVENT_PARAMETERS})"
    insert_events = (f"INSERT INTO events ({', '.join(ENVELOPE_COLUMNS)}) {source} "
                     "WHERE $2 = 0 OR EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND stream_version = $2)")
    if with_result:
        types += ["text", "text", "text", "text"]
        body = (f"WITH appended AS ({insert_events} RETURNING position), "
                f"recorded AS (INSERT INTO command_results (command_id, result, recorded_at, fingerprint) "
                f"SELECT ${_RESULT_PARAMETER}, ${_RESULT_PARAMETER + 1}, ${_RESULT_PARAMETER + 2}, "
                f"${_RESULT_PARAMETER + 3} "
                f"WHERE EXISTS (SELECT 1 FROM appended)) "
                f"SELECT count(*) FROM appended")
    else:
        body = insert_events
    return (f"PREPARE {name} ({', '.join(types)}) AS {body}",
            f"EXECUTE {name} ({', '.join(['%s'] * len(types))})")


# (one event?, with a command result?) -> (PREPARE, EXECUTE)
APPEND_STATEMENTS = {(one_event, with_result): _prepare_append(
    f"crm_append_{'one' if one_event else 'many'}{'_with_result' if with_result else ''}", one_event, with_result)
    for one_event in (True, False) for with_result in (False, True)}


class PostgresWriter:
    """One prepared statement per command, in autocommit, on a held connection.

    The statement inserts the events and the ``command_results`` row together,
    so it is atomic without ``BEGIN``/``COMMIT`` round trips. The head is
    remembered between appends and reloaded only when the primary key says
    another writer got there first.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._connection = None
        self._head: tuple[int, str] | None = None

    def append(self, command: Command) -> Sealed:
        for _attempt in range(MAX_APPEND_ATTEMPTS):
            try:
                sealed = self._attempt(command)
            except IntegrityError as error:
                self._head = None
                if not self._worth_retrying(command, error):
                    raise
                continue
            except Exception:
                self._head = None  # the statement may or may not have committed
                raise
            if sealed is not None:
                self._head = sealed.head
                return sealed
            if command.expected_version is not None:
                raise stale_version(command.stream_id, command.expected_version)
            # appending after "whatever is there", and the stream moved: build again
        raise Conflict(f"could not append to {command.stream_id}: the log is too contended, retry")

    @staticmethod
    def _worth_retrying(command: Command, error: IntegrityError) -> bool:
        """True if the key that refused the insert says "build again"; else raise why not."""
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if constraint == POSITION_KEY:
            return True  # another writer took the position: reload the head
        if constraint == STREAM_KEY:
            if command.expected_version is None:
                return True
            raise stale_version(command.stream_id, command.expected_version) from error
        if constraint == RESULT_KEY and command.record is not None:
            raise CommandRepeated(command.record.command_id) from error
        return False

    def _attempt(self, command: Command) -> Sealed | None:
        """Build on the head we know; ``None`` if the stream is not at the version built on."""
        connection = self._connection if self._connection is not None and self._connection.is_valid \
            else self._connect()
        with translated_errors(self.engine, connection), connection.dbapi_connection.cursor() as cursor:
            if self._head is None:
                cursor.execute(SELECT_HEAD)
                self._head = cursor.fetchone() or (0, GENESIS_HASH)
            version = command.expected_version
            if version is None:
                cursor.execute(paramstyle(self.engine, SELECT_STREAM_VERSION), (command.stream_id,))
                version = cursor.fetchone()[0]
            sealed = command.seal(version, self._head)
            one_event = len(sealed.rows) == 1
            parameters = [command.stream_id, version,
                          *(sealed.rows[0] if one_event else [list(column) for column in zip(*sealed.rows)])]
            if command.record is not None:
                parameters += sealed.result_row(command.record)
            cursor.execute(APPEND_STATEMENTS[one_event, command.record is not None][1], parameters)
            return sealed if _appended(cursor, command.record is not None) else None

    def _connect(self):
        """Hold a fresh connection in autocommit, with the append statements prepared on it."""
        self.close()
        connection = own_connection(self.engine)
        with translated_errors(self.engine, connection):
            database = connection.dbapi_connection
            database.autocommit = True
            with database.cursor() as cursor:
                for prepare, _execute in APPEND_STATEMENTS.values():
                    cursor.execute(prepare)
        self._connection = connection
        return connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._head = None
        if connection is not None:
            connection.close()


def _appended(cursor: Any, with_result: bool) -> bool:
    """Whether the append statement just executed inserted its events (the guard held)."""
    return bool(cursor.fetchone()[0]) if with_result else cursor.rowcount > 0
