"""Figures of our own event store: append, replay and verify rates.

Appends go through ``EventStore.append`` exactly as a command does: one new
stream per command, one event, one transaction, the hash chain computed and
each event signed. Replay and verify read the whole SQLite log the appends
left behind, grown with large batches to at least ``Sizes.log_events``
events first. The signing figures time one signature of an event hash and
one consumer's check of a received event (hash recomputed, signature
verified), and verify with every signature checked beside the sampled one.

On SQLite our engine commits with ``synchronous=NORMAL`` while the peer
keeps SQLite's default ``FULL`` (an fsync per commit). So the SQLite race
also times our store at ``FULL``: the like-for-like durability figure.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Protocol, Sequence

from sqlalchemy import event

from shared.bench.workload import EVENT_TYPE, SERVICE, Sizes, registrations
from shared.eventstore.envelope import CommandContext, NewEvent, new_id
from shared.eventstore.store import EventStore
from shared.signing import EventCheck, EventSigner

Tick = Callable[[int], None]
Phase = Callable[[str, int], Tick]  # (description, total steps) -> advance by n
CHUNK = 250  # commands per timed slice; progress is updated between slices, off the clock
WARM_COMMANDS = 20
ACTOR = ("crm-bench", "service")


class BenchError(RuntimeError):
    """A figure could not be measured (or measured something wrong)."""


class Registrar(Protocol):
    """Anything that stores one new customer per command."""

    def register_all(self, payloads: Sequence[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class OwnStore:
    """Our ``EventStore``: a new ``customer-<id>`` stream per command."""

    def __init__(self, url: str, sqlite_synchronous: str | None = None):
        self.store = EventStore.open(url, EventSigner.generate(SERVICE))
        if sqlite_synchronous is not None:
            _force_sqlite_synchronous(self.store, sqlite_synchronous)

    def register_all(self, payloads: Sequence[dict[str, Any]]) -> None:
        append = self.store.append
        for attributes in payloads:
            customer_id = new_id()
            append(f"customer-{customer_id}", [NewEvent(EVENT_TYPE, {"customer_id": customer_id, **attributes})],
                   0, CommandContext(*ACTOR))

    def sqlite_synchronous(self) -> int:
        with self.store.engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA synchronous").scalar_one()

    def close(self) -> None:
        self.store.engine.dispose()


def _force_sqlite_synchronous(store: EventStore, level: str) -> None:
    """Set ``PRAGMA synchronous`` on every connection, after the store's own settings."""
    @event.listens_for(store.engine, "connect")
    def _synchronous(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA synchronous={level}")
        cursor.close()

    store.engine.dispose()  # connections made before the listener go


def time_commands(registrar: Registrar, count: int, tick: Tick) -> float:
    """Seconds ``registrar`` needs for ``count`` commands (payloads made off the clock)."""
    seconds = 0.0
    for start in range(0, count, CHUNK):
        payloads = registrations(min(CHUNK, count - start))
        began = time.perf_counter()
        registrar.register_all(payloads)
        seconds += time.perf_counter() - began
        tick(len(payloads))
    return seconds


def race(contestants: Mapping[str, Registrar], commands: int, tick: Tick) -> dict[str, float]:
    """Commands per second of each contestant on the same work.

    They take turns slice by slice (rotating who goes first), so drift in a
    shared machine's load hits all of them alike.
    """
    for registrar in contestants.values():
        registrar.register_all(registrations(WARM_COMMANDS))
    names = list(contestants)
    seconds = dict.fromkeys(names, 0.0)
    for turn, start in enumerate(range(0, commands, CHUNK)):
        count = min(CHUNK, commands - start)
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            seconds[name] += time_commands(contestants[name], count, tick)
    return {name: commands / spent for name, spent in seconds.items()}


def build_log(store: EventStore, min_events: int, batch: int, tick: Tick) -> int:
    """Grow the log to at least ``min_events`` with ``batch`` events per append; the head."""
    head = store.head_position()
    while head < min_events:
        size = min(batch, min_events - head)
        customer_id = new_id()
        events = [NewEvent(EVENT_TYPE, {"customer_id": customer_id, **attributes})
                  for attributes in registrations(size)]
        head = store.append(f"customer-{customer_id}", events, 0, CommandContext(*ACTOR)).envelopes[-1].position
        tick(size)
    return head


def replay_figures(store: EventStore, expected: int) -> dict[str, Any]:
    """Read every envelope back (parsed, upcast) and recompute the hash chain."""
    began = time.perf_counter()
    replayed = sum(1 for _envelope in store.iter_since(0))
    replay_seconds = time.perf_counter() - began
    if replayed != expected:
        raise BenchError(f"replay read {replayed} events, the log holds {expected}")
    began = time.perf_counter()
    report = store.verify()
    verify_seconds = time.perf_counter() - began
    if not report.ok or report.checked != expected:
        raise BenchError(f"verify failed on a log the bench wrote itself: {report.to_dict()}")
    return {"replay_events_per_s": replayed / replay_seconds, "verify_events_per_s": report.checked / verify_seconds,
            "replayed_events": replayed, "verified_events": report.checked}


def signing_figures(store: EventStore, events: int) -> dict[str, Any]:
    """Microseconds to sign an event hash and to check a received event; verify with every signature checked."""
    envelopes = store.read_since(0, events, upcast=False)
    if not envelopes:
        raise BenchError("no events to time signing on: the log is empty")
    sign, hashes = store.signer.sign, [envelope.hash for envelope in envelopes]
    began = time.perf_counter()
    for event_hash in hashes:
        sign(event_hash)
    sign_seconds = time.perf_counter() - began
    refusal = EventCheck(store.service_keys).refusal
    began = time.perf_counter()
    refused = sum(refusal(SERVICE, envelope) is not None for envelope in envelopes)
    check_seconds = time.perf_counter() - began
    if refused:
        raise BenchError(f"the check refused {refused} events the bench's own store signed")
    began = time.perf_counter()
    report = store.verify(to_position=envelopes[-1].position, every_signature=True)
    verify_seconds = time.perf_counter() - began
    if not report.ok or report.checked != len(envelopes):
        raise BenchError(f"verify with every signature failed on the bench's own log: {report.to_dict()}")
    return {"sign_us_per_event": sign_seconds / len(hashes) * 1e6,
            "check_us_per_event": check_seconds / len(envelopes) * 1e6,
            "verify_every_signature_events_per_s": report.checked / verify_seconds,
            "signing_timed_events": len(envelopes)}


def sqlite_store_figures(directory: str, sizes: Sizes, phase: Phase, peer: Registrar | None = None) -> dict[str, Any]:
    """Append race on fresh SQLite files in ``directory``, then replay and verify our log.

    The store-only part of the bench (with ``peer=None``); also what the unit test runs.
    """
    own = OwnStore(f"sqlite:///{directory}/customers.db")
    contestants: dict[str, Registrar] = {"own": own}
    try:
        if peer is not None:
            contestants["peer"] = peer
            contestants["own_full_sync"] = OwnStore(f"sqlite:///{directory}/customers-full-sync.db", "FULL")
        rates = race(contestants, sizes.sqlite_commands,
                     phase(_race_title("SQLite", contestants), sizes.sqlite_commands * len(contestants)))
        missing = max(sizes.log_events - own.store.head_position(), 0)
        head = build_log(own.store, sizes.log_events, sizes.build_batch,
                         phase("SQLite: build replay log", missing))
        replayed = phase("SQLite: replay, verify, signatures", 1)
        figures = {"append_sqlite_per_s": rates["own"], "peer_append_sqlite_per_s": rates.get("peer"),
                   "append_sqlite_commands": sizes.sqlite_commands, "log_events": head,
                   "sqlite_synchronous_ours": own.sqlite_synchronous()}
        if "own_full_sync" in rates:
            figures["append_sqlite_full_sync_per_s"] = rates["own_full_sync"]
            figures["append_vs_peer_sqlite_full_sync"] = rates["own_full_sync"] / rates["peer"]
        figures.update(replay_figures(own.store, head))
        figures.update(signing_figures(own.store, sizes.signature_events))
        replayed(1)
        return figures
    finally:
        for registrar in contestants.values():
            if registrar is not peer:
                registrar.close()


def postgres_store_figures(url: str, sizes: Sizes, phase: Phase, peer: Registrar | None = None) -> dict[str, Any]:
    """Append race on a throwaway PostgreSQL database."""
    own = OwnStore(url)
    contestants: dict[str, Registrar] = {"own": own, **({"peer": peer} if peer is not None else {})}
    try:
        rates = race(contestants, sizes.postgres_commands,
                     phase(_race_title("PostgreSQL", contestants), sizes.postgres_commands * len(contestants)))
        return {"append_postgres_per_s": rates["own"], "peer_append_postgres_per_s": rates.get("peer"),
                "append_postgres_commands": sizes.postgres_commands}
    finally:
        own.close()


def _race_title(database: str, contestants: Mapping[str, Registrar]) -> str:
    return f"{database}: append" + (f" race ×{len(contestants)}" if len(contestants) > 1 else "")
