"""The append-only event log of one service (DESIGN.md, "Event store").

Positions are claimed by the writer as head + 1 under the table's primary
key: a writer can only claim N + 1 after it has seen N committed, so
positions follow commit order and a reader that has seen N never later
finds a new event below N. A writer whose cached head is stale loses the
key race, refreshes the head and tries again. ``(stream_id,
stream_version)`` is unique, which is the optimistic-concurrency check.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.canonical import GENESIS_HASH, canonical_json, sha256_hex
from shared.errors import Conflict
from shared.eventstore.engine import create_store_engine, write_transaction
from shared.eventstore.envelope import (CommandContext, Envelope, NewEvent, hash_input, new_id,
                                        utc_now_iso)
from shared.eventstore.tables import command_results, events
from shared.eventstore.upcasting import Upcasters

MAX_APPEND_ATTEMPTS = 100
READ_PAGE = 2000
_COLUMNS = (events.c.position, events.c.event_id, events.c.type, events.c.schema_version,
            events.c.service, events.c.stream_id, events.c.stream_version, events.c.occurred_at,
            events.c.recorded_at, events.c.actor, events.c.correlation_id, events.c.causation_id,
            events.c.data, events.c.prev_hash, events.c.hash)


@dataclass(frozen=True)
class Appended:
    stream_id: str
    version: int
    envelopes: list[Envelope]


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_position: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked,
                "first_bad_position": self.first_bad_position, "reason": self.reason}


class EventStore:
    def __init__(self, engine: Engine, service: str, upcasters: Upcasters | None = None):
        self.engine = engine
        self.service = service
        self.upcasters = upcasters or Upcasters()
        self._head: tuple[int, str] | None = None
        self._write_lock = threading.Lock()
        self._listeners: list[Callable[[list[Envelope]], None]] = []

    @classmethod
    def open(cls, url: str, service: str, upcasters: Upcasters | None = None) -> "EventStore":
        return cls(create_store_engine(url), service, upcasters)

    def on_append(self, listener: Callable[[list[Envelope]], None]) -> None:
        """Call ``listener`` with the new envelopes after each commit (wakes followers)."""
        self._listeners.append(listener)

    # -- writing -----------------------------------------------------------

    def append(self, stream_id: str, new_events: Sequence[NewEvent], expected_version: int | None,
               context: CommandContext, *, command_id: str | None = None,
               result: Callable[[Appended], dict[str, Any]] | None = None) -> Appended | dict[str, Any]:
        """Append one command's events atomically, with the hash chain.

        ``expected_version`` is the stream version the command decided on
        (0 for a new stream); ``None`` appends after whatever is there. With
        ``command_id`` the result of ``result(appended)`` is stored in the
        same transaction and returned; a repeat returns it and appends nothing.
        """
        if not new_events:
            raise ValueError("a command must append at least one event")
        with self._write_lock:
            for _attempt in range(MAX_APPEND_ATTEMPTS):
                try:
                    appended, stored = self._try_append(stream_id, new_events, expected_version,
                                                        context, command_id, result)
                except IntegrityError as error:
                    violated = _violated_constraint(error)
                    if violated == "command":
                        return self.command_result(command_id)  # type: ignore[arg-type,return-value]
                    if violated == "stream" and expected_version is not None:
                        raise Conflict(f"stream {stream_id} has moved past version {expected_version}; "
                                       "reload it and retry with its current version") from error
                    self._head = None  # someone else appended: refresh and retry
                    continue
                self._head = (appended.envelopes[-1].position, appended.envelopes[-1].hash)
                for listener in self._listeners:
                    listener(appended.envelopes)
                return stored if stored is not None else appended
        raise Conflict(f"could not append to {stream_id}: the log is too contended, retry")

    def _try_append(self, stream_id: str, new_events: Sequence[NewEvent], expected_version: int | None,
                    context: CommandContext, command_id: str | None,
                    result: Callable[[Appended], dict[str, Any]] | None):
        with write_transaction(self.engine) as connection, connection.begin():
            position, prev_hash = self._head or self._read_head(connection)
            version = expected_version if expected_version is not None else self.stream_version(stream_id, connection)
            recorded_at = utc_now_iso()
            rows, envelopes = [], []
            for offset, event in enumerate(new_events, start=1):
                row = {
                    "position": position + offset, "event_id": new_id(), "type": event.type,
                    "schema_version": event.schema_version, "service": self.service,
                    "stream_id": stream_id, "stream_version": version + offset,
                    "occurred_at": event.occurred_at or recorded_at, "recorded_at": recorded_at,
                    "actor": canonical_json(context.actor), "correlation_id": context.correlation_id,
                    "causation_id": context.causation_id, "data": canonical_json(event.data),
                    "prev_hash": prev_hash,
                }
                row["hash"] = prev_hash = sha256_hex(_row_hash_input(row))
                rows.append(row)
                envelopes.append(Envelope(**{**row, "actor": context.actor, "data": event.data}))
            connection.execute(insert(events), rows)
            appended = Appended(stream_id, version + len(new_events), envelopes)
            stored = None
            if command_id is not None:
                stored = result(appended) if result else {"stream_id": stream_id, "version": appended.version}
                connection.execute(insert(command_results), {"command_id": command_id,
                                                             "result": json.dumps(stored),
                                                             "recorded_at": recorded_at})
        return appended, stored

    @staticmethod
    def _read_head(connection: Connection) -> tuple[int, str]:
        row = connection.execute(
            select(events.c.position, events.c.hash).order_by(events.c.position.desc()).limit(1)).first()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    # -- reading -----------------------------------------------------------

    def command_result(self, command_id: str) -> dict[str, Any] | None:
        """The stored result of an earlier command with this id, if any."""
        with self.engine.connect() as connection:
            text = connection.execute(select(command_results.c.result)
                                      .where(command_results.c.command_id == command_id)).scalar()
        return json.loads(text) if text is not None else None

    def stream_version(self, stream_id: str, connection: Connection | None = None) -> int:
        query = select(func.coalesce(func.max(events.c.stream_version), 0)).where(events.c.stream_id == stream_id)
        if connection is not None:
            return connection.execute(query).scalar_one()
        with self.engine.connect() as own:
            return own.execute(query).scalar_one()

    def read_stream(self, stream_id: str) -> list[Envelope]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(*_COLUMNS).where(events.c.stream_id == stream_id)
                                      .order_by(events.c.stream_version)).all()
        return [self._envelope(row) for row in rows]

    def read_since(self, after_position: int, limit: int = READ_PAGE) -> list[Envelope]:
        """Envelopes with position > ``after_position``, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(*_COLUMNS).where(events.c.position > after_position)
                                      .order_by(events.c.position).limit(limit)).all()
        return [self._envelope(row) for row in rows]

    def iter_since(self, after_position: int = 0) -> Iterator[Envelope]:
        """Every envelope after ``after_position``, page by page, never all in memory."""
        for rows in self._pages(after_position):
            for row in rows:
                yield self._envelope(row)

    def head_position(self) -> int:
        with self.engine.connect() as connection:
            return self._read_head(connection)[0]

    def verify(self, from_position: int = 1, to_position: int | None = None) -> VerifyReport:
        """Recompute the hash chain; report the first position that breaks it and why."""
        from_position = max(from_position, 1)
        expected_prev = GENESIS_HASH
        if from_position > 1:
            with self.engine.connect() as connection:
                expected_prev = connection.execute(
                    select(events.c.hash).where(events.c.position == from_position - 1)).scalar()
            if expected_prev is None:
                return VerifyReport(False, 0, from_position - 1, f"position {from_position - 1} is missing")
        expected_position, checked = from_position, 0
        for rows in self._pages(from_position - 1, to_position):
            for row in rows:
                row = row._mapping
                if row["position"] != expected_position:
                    return VerifyReport(False, checked, expected_position,
                                        f"position {expected_position} is missing (next is {row['position']})")
                if row["prev_hash"] != expected_prev:
                    return VerifyReport(False, checked, expected_position,
                                        "prev_hash does not match the hash of the previous event")
                if sha256_hex(_row_hash_input(row)) != row["hash"]:
                    return VerifyReport(False, checked, expected_position,
                                        "hash does not match the event's content")
                expected_prev, expected_position, checked = row["hash"], expected_position + 1, checked + 1
        return VerifyReport(True, checked)

    def _pages(self, after_position: int, to_position: int | None = None) -> Iterator[Sequence[Any]]:
        """Keyset pages: each a short read, so no transaction stays open."""
        while True:
            query = select(*_COLUMNS).where(events.c.position > after_position)
            if to_position is not None:
                query = query.where(events.c.position <= to_position)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(events.c.position).limit(READ_PAGE)).all()
            if not rows:
                return
            yield rows
            after_position = rows[-1][0]

    def _envelope(self, row: Any) -> Envelope:
        values = row._mapping
        version, data = self.upcasters.upcast(values["type"], values["schema_version"], json.loads(values["data"]))
        return Envelope(**{**values, "schema_version": version, "data": data, "actor": json.loads(values["actor"])})


def _row_hash_input(row: Any) -> str:
    return hash_input(actor_json=row["actor"], causation_id=row["causation_id"],
                      correlation_id=row["correlation_id"], data_json=row["data"], event_id=row["event_id"],
                      occurred_at=row["occurred_at"], position=row["position"], prev_hash=row["prev_hash"],
                      recorded_at=row["recorded_at"], schema_version=row["schema_version"],
                      service=row["service"], stream_id=row["stream_id"],
                      stream_version=row["stream_version"], type=row["type"])


def _violated_constraint(error: IntegrityError) -> str:
    """Which unique key a failed append hit: ``position``, ``stream`` or ``command``."""
    message = str(error.orig)
    if "command_results" in message:
        return "command"
    if "stream_version" in message:
        return "stream"
    return "position"
