"""The event store's contract, one suite for every backend.

``EventStoreContract`` holds the tests; ``TestSqliteEventStore`` and
``TestPostgresEventStore`` say only how to reach their database, which
attempts to rewrite the log it refuses and how its owner gets past that
guard, in the manner of eventsourcing's ``ApplicationRecorderTestCase``.
Both must pass the very same tests; PostgreSQL adds what its roles decide.
On PostgreSQL the store connects as the service role, as in production.

"Threads" here are the threads of a nameko process: the root conftest
monkey-patches eventlet, so they are greenthreads, and on PostgreSQL the
cooperative driver lets them interleave inside appends. Separate processes
(spawned, each with its own ``EventStore``) are the truly parallel writers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import re
import threading
import uuid
from collections import defaultdict
from typing import Iterator

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

import shared.eventstore.store as store_module
from shared.canonical import GENESIS_HASH, canonical_json, sha256_hex
from shared.errors import Conflict
from shared.eventstore.engine import STORE_HISTORY, database_engine
from shared.eventstore.envelope import CommandContext, Envelope, NewEvent, hash_input
from shared.eventstore.store import Appended, CommandRecord, CommandRepeated, EventStore, RecordedCommand
from shared.eventstore.tables import RELAY_CHECKPOINT, checkpoints, events
from shared.eventstore.upcasting import Upcasters
from shared.migrations import SchemaNotMigrated, upgrade
from shared.ed25519_text import private_key_from_text
from shared.service_migration import Migrated, migrate_database
from shared.signing import EventSigner
from tests.postgres_roles import SERVICE_ROLE, owner_url as owner_of
from tests.support import signer, signing_key, wait_for

SERVICE = "customers"
CONTEXT = CommandContext("agent-7", "agent", correlation_id="request-1", causation_id="call-1")
WRITERS = 4
COMMANDS_PER_WRITER = 25
EVENTS_PER_COMMAND = 3
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DEADLINE_SECONDS = 120


def record(command_id: str) -> CommandRecord:
    """A command record whose stored result names the stream version it reached."""
    return CommandRecord(command_id, sha256_hex(command_id), lambda appended: {"version": appended.version})


def registered(name: str = "张伟", **extra) -> NewEvent:
    return NewEvent("CustomerRegistered", {"name": name, "tags": ["vip", 'quote"d'], **extra})


def expected_hash(envelope: Envelope) -> str:
    """What the hash is (docs/architecture.md): SHA-256 of the canonical JSON of the envelope without ``hash``
    and ``signature``."""
    return sha256_hex(canonical_json({k: v for k, v in envelope.to_dict().items() if k not in ("hash", "signature")}))


# -- concurrent writers (module level: spawned processes import them by name) ------------

def append_commands(store: EventStore, writer: str, commands: int) -> None:
    """``commands`` commands of ``EVENTS_PER_COMMAND`` events: new streams, and every fifth on a shared one.

    Each command's correlation id names it, so the log can be grouped by command afterwards.
    """
    for number in range(commands):
        context = CommandContext(writer, "agent", correlation_id=f"{writer}/{number}")
        batch = [registered(f"{writer}-{number}-{index}") for index in range(EVENTS_PER_COMMAND)]
        if number % 5 == 4:
            store.append("customer-shared", batch, None, context)
        else:
            store.append(f"customer-{writer}-{number}", batch, 0, context, record=record(f"{writer}/{number}"))


def write_in_process(url: str, key: str, writer: str, commands: int, ready) -> None:
    """Body of one spawned writer process: its own store on the shared database, signing with ``key``.

    The writers start together (``ready`` is a barrier): spawning takes long
    enough that otherwise each would be done before the next began.
    """
    store = EventStore.open(url, EventSigner(SERVICE, private_key_from_text(key)))
    try:
        ready.wait(DEADLINE_SECONDS)
        append_commands(store, writer, commands)
    finally:
        store.close()


def follow(store: EventStore, writers_done) -> int:
    """Poll the log like a relay until the writers are done; fail if a position ever shows up late.

    Each page must continue exactly where the last one ended: a position
    missing from a page and appearing later would be a new event below one
    the reader had already seen.
    """
    seen = 0

    def caught_up() -> bool:
        nonlocal seen
        done = writers_done()  # before reading, so the last read sees every commit
        positions = [envelope.position for envelope in store.read_since(seen, 50)]
        assert positions == list(range(seen + 1, seen + 1 + len(positions))), \
            f"having seen up to {seen}, the reader got {positions[:10]}"
        seen += len(positions)
        return done and not positions

    wait_for(caught_up, timeout=DEADLINE_SECONDS, interval=0.001, what="the writers to finish and every event read")
    return seen


def assert_well_formed_log(store: EventStore, total: int) -> None:
    """Gap-free positions, contiguous commands, gap-free streams, commit-ordered time, a valid chain."""
    log = list(store.iter_since(0))
    assert [envelope.position for envelope in log] == list(range(1, total + 1))
    commands: dict[str, list[Envelope]] = defaultdict(list)
    streams: dict[str, list[int]] = defaultdict(list)
    for envelope in log:
        commands[envelope.correlation_id].append(envelope)
        streams[envelope.stream_id].append(envelope.stream_version)
    for command, appended in commands.items():
        first = appended[0]
        assert [e.position for e in appended] == list(range(first.position, first.position + len(appended))), \
            f"events of command {command} are interleaved with others"
        assert [e.stream_version for e in appended] == list(range(first.stream_version,
                                                                  first.stream_version + len(appended)))
    for stream, versions in streams.items():
        assert versions == list(range(1, len(versions) + 1)), f"stream {stream} has gaps: {versions}"
    # A writer seals position N + 1 only after N has committed, so time follows positions.
    recorded = [envelope.recorded_at for envelope in log]
    assert recorded == sorted(recorded)
    assert store.verify().to_dict() == {"ok": True, "checked": total, "first_bad_position": None, "reason": None}


class EventStoreContract:
    """The tests; a subclass provides ``url`` and says how its database refuses and how to get past that."""

    # What the service's own connection may not do to the log, on any backend ...
    refused_statements: tuple[str, ...] = (
        "UPDATE events SET data = '{}'", "DELETE FROM events",
        "UPDATE command_results SET result = '{}'", "DELETE FROM command_results")
    refusal = ""  # ... and what the database says (a regular expression)
    # Statements that turn the guard off for the database's owner, and on again.
    guard_off: tuple[str, ...] = ()
    guard_on: tuple[str, ...] = ()

    @contextlib.contextmanager
    def tampering(self, owner_url: str) -> Iterator[Connection]:
        """A transaction as the database's owner in which the append-only guard is off."""
        engine = database_engine(owner_url)
        try:
            with engine.begin() as connection:
                for statement in self.guard_off:
                    connection.exec_driver_sql(statement)
                yield connection
                for statement in self.guard_on:
                    connection.exec_driver_sql(statement)
        finally:
            engine.dispose()

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def owner_url(self, url) -> str:
        return owner_of(url)

    @pytest.fixture
    def unmigrated_url(self) -> str:
        """Another database, with no schema yet."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, url) -> Iterator[EventStore]:
        store = EventStore.open(url, signer(SERVICE))
        yield store
        store.close()

    # -- appending and reading back -----------------------------------------------------

    def test_append_and_read_back_every_envelope_field(self, store):
        occurred = "2026-02-17T01:02:03.000004Z"
        appended = store.append("customer-1", [registered(), NewEvent("ConsentGiven", {"purpose": "callbacks"},
                                                                      schema_version=2, occurred_at=occurred)],
                                0, CONTEXT)

        assert isinstance(appended, Appended) and (appended.stream_id, appended.version) == ("customer-1", 2)
        first, second = appended.envelopes
        for envelope, position, event_type, version, data in (
                (first, 1, "CustomerRegistered", 1, {"name": "张伟", "tags": ["vip", 'quote"d']}),
                (second, 2, "ConsentGiven", 2, {"purpose": "callbacks"})):
            assert uuid.UUID(envelope.event_id).version == 4
            assert (envelope.type, envelope.schema_version, envelope.data) == (event_type, version, data)
            assert (envelope.service, envelope.stream_id) == (SERVICE, "customer-1")
            assert (envelope.stream_version, envelope.position) == (position, position)
            assert envelope.actor == {"id": "agent-7", "role": "agent"}
            assert (envelope.correlation_id, envelope.causation_id) == ("request-1", "call-1")
            assert ISO_UTC.match(envelope.recorded_at)
            assert envelope.hash == expected_hash(envelope)
            assert store.service_keys.signed_by(SERVICE, envelope.hash, envelope.signature)
        assert first.occurred_at == first.recorded_at and second.occurred_at == occurred
        assert (first.prev_hash, second.prev_hash) == (GENESIS_HASH, first.hash)
        assert first.event_id != second.event_id

        assert store.read_stream("customer-1") == appended.envelopes
        assert store.read_since(0) == appended.envelopes
        assert store.read_since(1) == [second]
        assert list(store.iter_since(0)) == appended.envelopes
        assert (store.head_position(), store.stream_version("customer-1")) == (2, 2)

    def test_an_empty_store(self, store):
        assert (store.head_position(), store.stream_version("nobody")) == (0, 0)
        assert store.read_stream("nobody") == [] and store.read_since(0) == [] and list(store.iter_since()) == []
        assert store.verify().to_dict() == {"ok": True, "checked": 0, "first_bad_position": None, "reason": None}

    def test_a_command_must_append_something(self, store):
        with pytest.raises(ValueError):
            store.append("customer-1", [], 0, CONTEXT)

    def test_expected_version_none_appends_after_whatever_is_there(self, store):
        store.append("customer-1", [registered()], 0, CONTEXT)
        appended = store.append("customer-1", [registered("李娜"), registered("王芳")], None, CONTEXT)
        assert [e.stream_version for e in appended.envelopes] == [2, 3] and appended.version == 3

    def test_stale_expected_version_conflicts_and_writes_nothing(self, store):
        store.append("customer-1", [registered()], 0, CONTEXT)
        store.append("customer-1", [registered("李娜")], 1, CONTEXT)
        before = store.read_since(0)

        for stale in (0, 1):
            with pytest.raises(Conflict, match="customer-1"):
                store.append("customer-1", [registered("lost update")], stale, CONTEXT, record=record(f"late-{stale}"))
        # Ahead of the stream: would leave a gap in its versions (one event or several, with an id or not).
        for ahead in ([registered("from the future")], [registered("from"), registered("the future")]):
            for command in (None, record("ahead")):
                with pytest.raises(Conflict):
                    store.append("customer-1", ahead, 5, CONTEXT, record=command)
        with pytest.raises(Conflict):
            store.append("customer-2", [registered()], 1, CONTEXT)

        assert store.read_since(0) == before
        assert all(store.recorded_command(command_id) is None for command_id in ("late-0", "late-1", "ahead"))
        assert store.verify().ok
        assert store.append("customer-1", [registered("retried")], 2, CONTEXT).version == 3

    def test_a_command_id_is_stored_with_its_fingerprint_and_result_and_never_twice(self, store):
        first = store.append("customer-1", [registered()], 0, CONTEXT, record=CommandRecord(
            "register-1", "f" * 64, lambda appended: {"customer_id": "1", "version": appended.version,
                                                      "position": appended.envelopes[-1].position}))
        assert first.result == {"customer_id": "1", "version": 1, "position": 1}
        store.append("customer-2", [registered("李娜")], 0, CONTEXT)

        # The same id again, however the command is phrased: refused, nothing written.
        with pytest.raises(Conflict):
            store.append("customer-1", [registered()], 0, CONTEXT, record=record("register-1"))
        with pytest.raises(CommandRepeated):
            store.append("customer-1", [registered()], None, CONTEXT, record=record("register-1"))
        with pytest.raises(CommandRepeated):
            store.record_command("register-1", "e" * 64, {"other": True})
        assert store.head_position() == 2 and store.stream_version("customer-1") == 1
        assert store.recorded_command("register-1") == RecordedCommand("f" * 64, first.result)

    def test_a_command_that_appends_nothing_can_still_bind_its_id(self, store):
        store.record_command("consent-1", "a" * 64, {"customer_id": "1", "version": 4})
        assert store.recorded_command("consent-1") == RecordedCommand("a" * 64, {"customer_id": "1", "version": 4})
        assert store.head_position() == 0

    def test_listeners_hear_of_each_commit_and_cannot_break_it(self, store, caplog):
        heard = []
        store.on_append(heard.append)
        store.on_append(lambda envelopes: 1 / 0)
        with caplog.at_level(logging.ERROR):
            appended = store.append("customer-1", [registered(), registered("李娜")], 0, CONTEXT)
        assert heard == [appended.envelopes]
        assert "listener" in caplog.text and store.head_position() == 2

    def test_reads_page_through_a_log_longer_than_a_page(self, store, monkeypatch):
        monkeypatch.setattr(store_module, "READ_PAGE", 4)
        for number in range(5):
            store.append(f"customer-{number}", [registered()] * 3, 0, CONTEXT)
        assert [e.position for e in store.iter_since(0)] == list(range(1, 16))
        assert [e.position for e in store.iter_since(13)] == [14, 15]
        assert [e.position for e in store.read_since(2, limit=3)] == [3, 4, 5]
        assert store.verify().checked == 15
        assert store.verify(3, 10).to_dict() == {"ok": True, "checked": 8, "first_bad_position": None,
                                                 "reason": None}
        assert store.verify(from_position=15).checked == 1

    def test_stores_sharing_a_database_continue_each_other(self, store, url):
        other = EventStore.open(url, signer(SERVICE))
        try:
            for number in range(6):
                writer = (store, other)[number % 2]
                writer.append(f"customer-{number}", [registered()] * 2, 0,
                              CommandContext("agent-7", "agent", correlation_id=f"register-{number}"))
                writer.append("customer-shared", [registered()], None,
                              CommandContext("agent-7", "agent", correlation_id=f"share-{number}"))
            with pytest.raises(Conflict):  # each store's view of a stream is read afresh
                other.append("customer-shared", [registered()], 1, CONTEXT)
        finally:
            other.close()
        assert_well_formed_log(store, 18)

    def test_disposing_the_engine_releases_the_writer_which_reconnects(self, store):
        store.append("customer-1", [registered()], 0, CONTEXT)
        store.engine.dispose()
        store.append("customer-1", [registered()], 1, CONTEXT)
        assert store.head_position() == 2 and store.verify().ok

    # -- concurrency ----------------------------------------------------------------------

    @pytest.mark.parametrize("one_store_each", [False, True], ids=["shared-store", "store-per-thread"])
    def test_concurrent_threads_keep_positions_gap_free_and_commands_contiguous(self, store, url, one_store_each):
        stores = [EventStore.open(url, signer(SERVICE)) if one_store_each else store for _ in range(WRITERS)]
        failures: list[BaseException] = []

        def write(writer: int) -> None:
            try:
                append_commands(stores[writer], f"thread{writer}", COMMANDS_PER_WRITER)
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
        try:
            for thread in threads:
                thread.start()
            seen = follow(store, lambda: not any(thread.is_alive() for thread in threads))
        finally:
            for thread in threads:
                thread.join(DEADLINE_SECONDS)
            for each in stores:
                if each is not store:
                    each.close()
        assert not failures, failures
        total = WRITERS * COMMANDS_PER_WRITER * EVENTS_PER_COMMAND
        assert seen == total
        assert_well_formed_log(store, total)

    def test_concurrent_processes_keep_positions_gap_free_and_commit_ordered(self, store, url):
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Barrier(WRITERS)
        processes = [spawn.Process(target=write_in_process,
                                   args=(url, signing_key(SERVICE), f"process{writer}", COMMANDS_PER_WRITER,
                                         ready))
                     for writer in range(WRITERS)]
        try:
            for process in processes:
                process.start()
            seen = follow(store, lambda: not any(process.is_alive() for process in processes))
        finally:
            for process in processes:
                process.join(DEADLINE_SECONDS)
                if process.is_alive():
                    process.kill()
        assert [process.exitcode for process in processes] == [0] * WRITERS
        total = WRITERS * COMMANDS_PER_WRITER * EVENTS_PER_COMMAND
        assert seen == total
        assert_well_formed_log(store, total)

    # -- the hash chain and the guard ------------------------------------------------------

    def fill(self, store: EventStore, count: int = 6) -> None:
        for number in range(count):
            store.append(f"customer-{number}", [registered(f"customer {number}")], 0, CONTEXT)
        assert store.verify().to_dict() == {"ok": True, "checked": count, "first_bad_position": None,
                                            "reason": None}

    def test_an_edited_event_is_found(self, store, owner_url):
        self.fill(store)
        with self.tampering(owner_url) as connection:
            connection.execute(update(events).where(events.c.position == 3).values(data='{"name":"forged"}'))
        assert store.verify().to_dict() == {"ok": False, "checked": 2, "first_bad_position": 3,
                                            "reason": "hash does not match the event's content"}
        assert store.verify(1, 2).ok

    def test_an_edited_event_with_a_recomputed_hash_is_named_by_its_signature(self, store, owner_url):
        """The next link breaks at 4, but the signature at 3 no longer matches: 3 is the event to blame."""
        self.fill(store)
        forged = {**store.read_since(2, 1)[0].to_dict(), "data": {"name": "forged"}}
        forged["hash"] = expected_hash(Envelope(**forged))
        with self.tampering(owner_url) as connection:
            connection.execute(update(events).where(events.c.position == 3)
                               .values(data=canonical_json(forged["data"]), hash=forged["hash"]))
        assert store.verify().to_dict() == {"ok": False, "checked": 2, "first_bad_position": 3,
                                            "reason": "bad signature"}

    def test_a_chain_recomputed_without_the_key_is_found_at_its_first_event(self, store, owner_url):
        self.fill(store)
        forger = EventSigner.generate(SERVICE)
        prev_hash = store.read_since(1, 1)[0].hash  # of position 2, the last genuine one
        with self.tampering(owner_url) as connection:
            for envelope in store.read_since(2):
                data = {"name": "forged"} if envelope.position == 3 else envelope.data
                rewritten = Envelope(**{**envelope.to_dict(), "data": data, "prev_hash": prev_hash})
                prev_hash = expected_hash(rewritten)
                connection.execute(update(events).where(events.c.position == envelope.position).values(
                    data=canonical_json(data), prev_hash=rewritten.prev_hash, hash=prev_hash,
                    signature=forger.sign(prev_hash)))
        assert store.verify().to_dict() == {"ok": False, "checked": 2, "first_bad_position": 3,
                                            "reason": "bad signature"}
        assert store.verify(1, 2).ok

    def test_a_deleted_event_is_found(self, store, owner_url):
        self.fill(store)
        with self.tampering(owner_url) as connection:
            connection.execute(delete(events).where(events.c.position == 3))
        assert store.verify().to_dict() == {"ok": False, "checked": 2, "first_bad_position": 3,
                                            "reason": "position 3 is missing (next is 4)"}
        assert store.verify(from_position=4).to_dict() == {"ok": False, "checked": 0, "first_bad_position": 3,
                                                           "reason": "position 3 is missing"}

    def test_reordered_events_are_found(self, store, owner_url):
        self.fill(store)
        with self.tampering(owner_url) as connection:
            rows = dict(connection.execute(select(events.c.position, events.c.data)
                                           .where(events.c.position.in_([4, 5]))).all())
            connection.execute(update(events).where(events.c.position == 4).values(data=rows[5]))
            connection.execute(update(events).where(events.c.position == 5).values(data=rows[4]))
        assert store.verify().to_dict() == {"ok": False, "checked": 3, "first_bad_position": 4,
                                            "reason": "hash does not match the event's content"}

    def test_the_database_itself_refuses_to_change_the_log(self, store):
        self.fill(store, 2)
        store.append("customer-9", [registered()], 0, CONTEXT, record=record("register-9"))
        before = store.read_since(0)
        for statement in self.refused_statements:
            with store.engine.connect() as connection:
                with pytest.raises(DBAPIError, match=self.refusal):
                    connection.exec_driver_sql(statement)
                connection.rollback()
        assert store.read_since(0) == before and store.verify().ok
        assert store.recorded_command("register-9") == RecordedCommand(sha256_hex("register-9"), {"version": 1})

    def test_events_cut_from_the_end_are_found_below_the_relay_checkpoint(self, store, owner_url):
        self.fill(store)
        with store.engine.begin() as connection:  # as the relay records what the broker confirmed
            connection.execute(insert(checkpoints).values(name=RELAY_CHECKPOINT, position=6))
        assert store.verify().ok
        with self.tampering(owner_url) as connection:
            connection.execute(delete(events).where(events.c.position > 4))
        assert store.verify().to_dict() == {"ok": False, "checked": 4, "first_bad_position": 5,
                                            "reason": "events after position 4 are missing (published up to 6)"}
        assert store.verify(from_position=3).to_dict() == {
            "ok": False, "checked": 2, "first_bad_position": 5,
            "reason": "events after position 4 are missing (published up to 6)"}
        assert store.verify(1, 4).ok and not store.verify(1, 5).ok

    def test_a_log_from_before_signing_keeps_its_guards_and_its_events_show_as_unsigned(self, unmigrated_url):
        owner = database_engine(owner_of(unmigrated_url))
        upgrade(owner, STORE_HISTORY.location, STORE_HISTORY.version_table, "0003")
        old = {"position": 1, "event_id": str(uuid.uuid4()), "type": "CustomerRegistered", "schema_version": 1,
               "service": SERVICE, "stream_id": "customer-1", "stream_version": 1, "occurred_at": "t",
               "recorded_at": "t", "actor": '{"id":"a","role":"agent"}', "correlation_id": "c",
               "causation_id": None, "data": "{}", "prev_hash": GENESIS_HASH}
        old["hash"] = sha256_hex(hash_input(*(old[name] for name in sorted(old))))  # its parameters' order
        with owner.begin() as connection:
            connection.execute(events.insert().values(old))
        owner.dispose()
        migrate_database(owner_of(unmigrated_url), unmigrated_url, [STORE_HISTORY])
        store = EventStore.open(unmigrated_url, signer(SERVICE))
        try:
            assert store.read_since(0)[0].signature is None
            assert store.verify().to_dict() == {"ok": False, "checked": 0, "first_bad_position": 1,
                                                "reason": "no signature"}
            with store.engine.connect() as connection, pytest.raises(DBAPIError, match=self.refusal):
                connection.exec_driver_sql("UPDATE events SET signature = 'x'")
        finally:
            store.close()

    # -- upcasting --------------------------------------------------------------------------

    def test_old_schema_versions_are_upcast_on_read_and_still_verify(self, store, url):
        store.append("customer-1", [NewEvent("CustomerRegistered", {"name": "张 伟"}, schema_version=1),
                                    NewEvent("ConsentGiven", {"purpose": "callbacks"})], 0, CONTEXT)
        upcasters = Upcasters()
        upcasters.register("CustomerRegistered", 1, lambda data: {"full_name": data["name"]})
        upcasters.register("CustomerRegistered", 2, lambda data: {**data, "tier": "general"})
        reader = EventStore.open(url, signer(SERVICE), upcasters)
        try:
            for envelopes in (reader.read_stream("customer-1"), reader.read_since(0), list(reader.iter_since(0))):
                registered_event, consent = envelopes
                assert registered_event.schema_version == 3
                assert registered_event.data == {"full_name": "张 伟", "tier": "general"}
                assert (consent.schema_version, consent.data) == (1, {"purpose": "callbacks"})
            assert reader.verify().ok and reader.verify().checked == 2
            recorded = reader.read_since(0, upcast=False)[0]  # what other services get: signed as written
            assert (recorded.schema_version, recorded.data) == (1, {"name": "张 伟"})
        finally:
            reader.close()
        assert store.read_stream("customer-1")[0].schema_version == 1  # the log keeps what was written


def copy_of_event(verb: str, **replaced: str) -> str:
    """SQL that writes event 1 again with ``verb``, some columns replaced by SQL expressions."""
    columns = [column.name for column in events.columns]
    values = ", ".join(replaced.get(column, column) for column in columns)
    return f"{verb} INTO events ({', '.join(columns)}) SELECT {values} FROM events WHERE position = 1"


FORGED = "'{\"name\":\"forged\"}'"


class TestSqliteEventStore(EventStoreContract):
    refused_statements = EventStoreContract.refused_statements + (
        copy_of_event("INSERT OR REPLACE", data=FORGED),
        copy_of_event("REPLACE", data=FORGED),
        copy_of_event("REPLACE", position="position + 100"),  # takes the event id of position 1
        copy_of_event("REPLACE", position="position + 100", event_id="'forged-id'"),  # and its stream version
        copy_of_event("INSERT OR IGNORE"),
        "INSERT OR REPLACE INTO command_results SELECT command_id, '{}', recorded_at, fingerprint "
        "FROM command_results",
        "REPLACE INTO command_results SELECT command_id, '{}', recorded_at, fingerprint FROM command_results",
    )
    refusal = "is append-only"
    guard_off = ("DROP TRIGGER events_refuse_update", "DROP TRIGGER events_refuse_delete")

    @pytest.fixture
    def url(self, sqlite_url):
        return sqlite_url

    @pytest.fixture
    def unmigrated_url(self, tmp_path):
        return f"sqlite:///{tmp_path / 'unmigrated.db'}"


class TestPostgresEventStore(EventStoreContract):
    refused_statements = EventStoreContract.refused_statements + (
        "ALTER TABLE events DISABLE TRIGGER ALL", "ALTER TABLE events DISABLE TRIGGER events_refuse_change",
        "DROP TRIGGER events_refuse_change ON events", "SET session_replication_role = replica",
        "TRUNCATE events", "TRUNCATE command_results", "DROP TABLE events", "ALTER TABLE events OWNER TO CURRENT_USER",
        "UPDATE alembic_version_store SET version_num = '0001'",
        copy_of_event("INSERT") + " ON CONFLICT (position) DO UPDATE SET data = " + FORGED,
    )
    refusal = "permission denied|must be owner"
    guard_off = ("ALTER TABLE events DISABLE TRIGGER USER",)
    guard_on = ("ALTER TABLE events ENABLE TRIGGER USER",)

    @pytest.fixture
    def url(self, postgres_url):
        return postgres_url

    @pytest.fixture
    def unmigrated_url(self, postgres_url_factory):
        return postgres_url_factory(migrated=False)

    @pytest.mark.parametrize("statement", [
        "UPDATE events SET data = '{}'", "DELETE FROM events", "TRUNCATE events",
        "UPDATE command_results SET result = '{}'", "DELETE FROM command_results", "TRUNCATE command_results"])
    def test_the_owner_too_is_refused_while_the_triggers_are_on(self, store, owner_url, statement):
        self.fill(store, 2)
        store.append("customer-9", [registered()], 0, CONTEXT, record=record("register-9"))
        engine = database_engine(owner_url)
        try:
            with engine.connect() as connection, pytest.raises(DBAPIError, match="is append-only"):
                connection.exec_driver_sql(statement)
        finally:
            engine.dispose()
        assert store.head_position() == 3 and store.recorded_command("register-9") is not None

    def test_the_service_role_waits_for_the_owner_to_migrate(self, unmigrated_url):
        with pytest.raises(SchemaNotMigrated, match=r"revision none of alembic_version_store, not at head .*"
                                                    r"`crm migrate customers` with CRM_CUSTOMERS_OWNER_DATABASE_URL"):
            EventStore.open(unmigrated_url, signer(SERVICE))
        with pytest.raises(SchemaNotMigrated, match=f"role {SERVICE_ROLE} may not migrate"):
            migrate_database(unmigrated_url, unmigrated_url, [STORE_HISTORY])

        migrated = migrate_database(owner_of(unmigrated_url), unmigrated_url, [STORE_HISTORY])
        assert migrated == Migrated({"alembic_version_store": STORE_HISTORY.head()}, SERVICE_ROLE)
        store = EventStore.open(unmigrated_url, signer(SERVICE))
        try:
            store.append("customer-1", [registered()], 0, CONTEXT, record=record("register-1"))
            assert store.verify().ok and store.recorded_command("register-1") is not None
        finally:
            store.close()

    def test_a_writer_whose_connection_died_reconnects(self, store):
        store.append("customer-1", [registered()], 0, CONTEXT)
        others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        with store.engine.connect() as connection:
            connection.execute(text(f"SELECT pg_terminate_backend(pid) {others}"))
            connection.commit()

            def writer_gone() -> bool:
                connection.commit()  # statistics views are a snapshot per transaction
                return not connection.execute(text(f"SELECT count(*) {others}")).scalar()

            wait_for(writer_gone, timeout=10, what="the writer's backend to go away")
        with pytest.raises(DBAPIError):
            store.append("customer-1", [registered()], 1, CONTEXT)
        store.append("customer-1", [registered()], 1, CONTEXT)
        assert store.head_position() == 2 and store.verify().ok
