"""The consumer runner and dead-letter queue on real SQLite and PostgreSQL, with a projection.

The example projection counts events per stream and keeps the last name
seen. Its apply reads, yields to other greenthreads, then writes, as a real
cooperative driver would, so lost updates and interleavings would show.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import Counter

import eventlet
import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, delete, insert, select, update

from shared.dead_letters import DeadLetters
from shared.errors import Conflict
from shared.eventstore.engine import create_store_engine, database_engine
from shared.eventstore.envelope import CommandContext, Envelope, NewEvent, content_hash
from shared.eventstore.store import EventStore
from shared.eventstore.tables import projection_tracking
from shared.checksums import checksum
from shared.consumer_runner import GAP_PAGE, ConsumerGap, ConsumerRunner, UpstreamForked
from shared.consumers import Projection, Reaction, handles
from shared.signing import EventCheck, EventSigner, ServiceKeys
from tests.postgres_roles import owner_url as owner_of
from tests.support import signer

CONTEXT = CommandContext("agent-1", "agent")
WAIT = 60  # seconds any greenthread pool may take before the test fails


@pytest.fixture
def postgres_en_us_url(postgres_url_factory):
    """A database that sorts text like most production servers: by locale, not by code point."""
    return postgres_url_factory("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")


# -- the example projection ----------------------------------------------------------

class StreamCounts(Projection):
    """Events per stream and the last name seen; ``poison`` events fail while ``broken``."""

    name = "test.stream_counts"
    metadata = MetaData()
    counts = Table("stream_counts", metadata,
                   Column("stream_id", String(120), primary_key=True),
                   Column("events", Integer, nullable=False),
                   Column("last_name", Text),
                   Column("poisoned", Boolean, nullable=False))

    def __init__(self, broken: bool = False):
        self.broken = broken
        self.attempts: Counter[int] = Counter()

    @handles("customers", "CustomerDetailsChanged")
    def count(self, connection, envelope: Envelope) -> None:
        self.attempts[envelope.position] += 1
        table = self.counts
        row = connection.execute(select(table).where(table.c.stream_id == envelope.stream_id)).first()
        eventlet.sleep(0)  # let other greenthreads in between the read and the write
        poisoned = bool(envelope.data.get("poison"))
        if row is None:
            connection.execute(insert(table).values(stream_id=envelope.stream_id, events=1, poisoned=poisoned,
                                                    last_name=envelope.data.get("name")))
        else:
            connection.execute(update(table).where(table.c.stream_id == envelope.stream_id).values(
                events=row.events + 1, poisoned=row.poisoned or poisoned,
                last_name=envelope.data.get("name", row.last_name)))
        if poisoned and self.broken:  # after the writes: they must roll back
            raise ValueError(f"cannot apply {envelope.type} to {envelope.stream_id}")


def create_tables(url: str, metadata: MetaData = StreamCounts.metadata) -> None:
    """A test consumer's tables, made by the database's owner as a migration would."""
    owner = database_engine(owner_of(url))
    metadata.create_all(owner)
    owner.dispose()


def poison_error(error: str) -> bool:
    """The text kept for ``StreamCounts``' failure: its type and place, not its message (shared.error_text)."""
    return error.startswith("ValueError at tests/integration/test_projections.py:") and error.endswith(" in count")


@pytest.fixture
def engine(database_url):
    engine = create_store_engine(database_url)
    create_tables(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine):
    return EventStore(engine, signer("customers"))


def append(store: EventStore, stream_id: str, **data) -> Envelope:
    return store.append(stream_id, [NewEvent("CustomerDetailsChanged", data)], None, CONTEXT).envelopes[0]


def fetch_from(store: EventStore):
    """``fetch_since`` as a service provides it, answering with dicts as the RPC would."""
    def fetch_since(upstream: str, after: int, limit: int) -> list[dict]:
        fetch_since.calls.append((upstream, after, limit))
        return [envelope.to_dict() for envelope in store.read_since(after, limit)]
    fetch_since.calls = []
    return fetch_since


def counts(engine) -> dict[str, tuple[int, str | None]]:
    table = StreamCounts.counts
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.stream_id, table.c.events, table.c.last_name)).all()
    return {stream_id: (events, last_name) for stream_id, events, last_name in rows}


def live_checksum(engine) -> str:
    with engine.connect() as connection:
        return checksum(connection, StreamCounts.metadata)


def wait_all(pool: eventlet.GreenPool) -> None:
    with eventlet.Timeout(WAIT):
        pool.waitall()


# -- tests ------------------------------------------------------------------------------

def test_apply_and_tracking_commit_together(engine, store):
    """Tracking moves inside the apply's transaction; a failed attempt rolls back both."""
    seen = []

    class Observed(StreamCounts):
        def apply(self, connection, envelope):
            inside = connection.execute(select(projection_tracking.c.position).where(
                projection_tracking.c.projection == self.name)).scalar()
            seen.append((runner.position("customers"), inside, counts_in(connection)))
            super().apply(connection, envelope)

    def counts_in(connection):
        return dict(connection.execute(select(StreamCounts.counts.c.stream_id, StreamCounts.counts.c.events)).all())

    runner = ConsumerRunner(engine, Observed(broken=True), max_attempts=3)
    first, poison = append(store, "c1", name="Ann"), append(store, "c1", name="Eve", poison=True)

    assert runner.handle("customers", first) == "applied"
    assert runner.handle("customers", poison) == "dead_lettered"

    # (committed position, position inside the transaction, rows): each retry starts clean
    assert seen == [(0, 1, {})] + [(1, 2, {"c1": 1})] * 3
    assert counts(engine) == {"c1": (1, "Ann")}  # the poison's partial write is gone
    assert runner.position("customers") == 2     # moved past it only with the dead letter


def test_duplicate_is_a_no_op(engine, store):
    runner = ConsumerRunner(engine, StreamCounts())
    event = append(store, "c1", name="Ann")

    assert runner.handle("customers", event) == "applied"
    before = live_checksum(engine)
    assert runner.handle("customers", event) == "duplicate"
    assert runner.handle("customers", event.to_dict()) == "duplicate"

    assert live_checksum(engine) == before
    assert counts(engine) == {"c1": (1, "Ann")}
    assert runner.position("customers") == 1


def test_gap_is_filled_from_the_producer_before_applying(engine, store):
    events = [append(store, f"c{n % 2}", name=f"name {n}") for n in range(1, 6)]
    fetch_since = fetch_from(store)
    runner = ConsumerRunner(engine, StreamCounts(), fetch_since=fetch_since)

    assert runner.handle("customers", events[0]) == "applied"
    assert runner.handle("customers", events[4]) == "applied"

    assert fetch_since.calls == [("customers", 1, GAP_PAGE)]  # a page, not only the gap: it is likely behind
    assert runner.position("customers") == 5
    assert counts(engine) == {"c1": (3, "name 5"), "c0": (2, "name 4")}
    assert runner.handle("customers", events[2]) == "duplicate"


def test_gap_without_a_producer_applies_nothing(engine, store):
    events = [append(store, "c1", name=f"name {n}") for n in range(1, 4)]
    runner = ConsumerRunner(engine, StreamCounts())
    runner.handle("customers", events[0])

    with pytest.raises(ConsumerGap, match="did not supply 2"):
        runner.handle("customers", events[2])
    assert runner.position("customers") == 1
    assert counts(engine) == {"c1": (1, "name 1")}


@pytest.fixture
def replaced_store(tmp_path):
    """The producer's log after its database was recreated: same positions, other events."""
    replaced = EventStore.open(f"sqlite:///{tmp_path}/replaced.db", signer("customers"))
    yield replaced
    replaced.close()


def test_event_of_a_replaced_log_is_refused_not_applied(engine, store, replaced_store):
    runner = ConsumerRunner(engine, StreamCounts())
    runner.catch_up("customers", [append(store, "c1", name=f"name {n}") for n in range(1, 3)])
    impostors = [append(replaced_store, "c9", name=f"other {n}") for n in range(1, 4)]

    with pytest.raises(UpstreamForked, match="customers event at position 3 .* does not continue"):
        runner.handle("customers", impostors[2])
    with pytest.raises(UpstreamForked, match="at position 2"):  # a redelivery of the last position that is not the same event
        runner.handle("customers", impostors[1])
    with pytest.raises(UpstreamForked):
        runner.catch_up("customers", impostors[2:])

    assert runner.position("customers") == 2
    assert counts(engine) == {"c1": (2, "name 2")}
    assert runner.handle("customers", impostors[0]) == "duplicate"  # older positions are only skipped
    assert "was replaced" in runner.forked["customers"]  # what health() shows


def test_rebuild_from_the_replaced_log_follows_it_from_then_on(engine, store, replaced_store):
    runner = ConsumerRunner(engine, StreamCounts())
    runner.catch_up("customers", [append(store, "c1", name="Ann")])
    impostors = [append(replaced_store, "c9", name=f"other {n}") for n in range(1, 3)]
    with pytest.raises(UpstreamForked):
        runner.handle("customers", impostors[0])  # same position, another event
    assert set(runner.forked) == {"customers"}

    report = runner.rebuild(lambda _upstream: replaced_store.iter_since(0))

    assert report["repaired"] and counts(engine) == {"c9": (1, "other 1")}
    assert runner.forked == {}
    assert runner.handle("customers", impostors[1]) == "applied"
    assert counts(engine) == {"c9": (2, "other 2")}


# -- events that are not genuine ------------------------------------------------------------

def checked(engine, store: EventStore, fetch_since=None) -> ConsumerRunner:
    """A runner that checks events against the producer's key, as every service's runners do."""
    return ConsumerRunner(engine, StreamCounts(), fetch_since, check=EventCheck(ServiceKeys.of(store.signer)))


def forged(envelope: Envelope, **changes) -> dict:
    """``envelope`` changed, with a correctly recomputed hash, signed by a key the producer does not have."""
    changed = dataclasses.replace(envelope, **changes)
    changed = dataclasses.replace(changed, hash=content_hash(changed))
    return {**changed.to_dict(), "signature": EventSigner.generate("customers").sign(changed.hash)}


def test_a_forged_event_is_refused_and_changes_nothing_and_the_genuine_one_still_applies(engine, store):
    runner = checked(engine, store)
    first = append(store, "c1", name="Ann")
    assert runner.handle("customers", first) == "applied"
    second = append(store, "c1", name="Bob")
    before = live_checksum(engine)

    assert runner.handle("customers", forged(second, data={"name": "Mallory"})) == "refused"
    assert runner.handle("customers", forged(first, data={"name": "Mallory"})) == "refused"  # not a fork
    assert runner.handle("customers", {**second.to_dict(), "signature": None}) == "refused"
    assert runner.refused == {"customers": {"count": 3, "last_reason": "no signature",
                                            "last_event_id": second.event_id}}
    assert (runner.position("customers"), runner.forked, live_checksum(engine)) == (1, {}, before)

    assert runner.handle("customers", second) == "applied"
    assert runner.handle("customers", second.to_dict()) == "duplicate"  # a replay of a genuine event
    assert counts(engine) == {"c1": (2, "Bob")} and runner.refused["customers"]["count"] == 3


def test_a_catch_up_refuses_the_forged_event_among_genuine_ones(engine, store):
    runner = checked(engine, store)
    events = [append(store, "c1", name=f"name {n}") for n in range(1, 5)]
    pulled = [*events[:2], forged(events[2], data={"name": "Mallory"}), *events[2:]]

    assert runner.catch_up("customers", pulled) == {"applied": 4, "refused": 1}
    assert counts(engine) == {"c1": (4, "name 4")} and runner.refused["customers"]["count"] == 1


def test_a_gap_the_producer_fills_with_a_forged_event_applies_nothing(engine, store):
    events = [append(store, "c1", name=f"name {n}") for n in range(1, 4)]
    runner = checked(engine, store, fetch_since=lambda *_: [forged(events[1], data={"name": "Mallory"})])
    runner.handle("customers", events[0])

    with pytest.raises(ConsumerGap, match="position 2 was refused \\(bad signature\\)"):
        runner.handle("customers", events[2])
    assert runner.position("customers") == 1 and counts(engine) == {"c1": (1, "name 1")}
    assert runner.refused["customers"]["last_reason"] == "bad signature"


def test_a_rebuild_fed_a_forged_event_refuses_to_repair(engine, store):
    runner = checked(engine, store)
    events = [append(store, "c1", name="Ann"), append(store, "c1", name="Bob")]
    runner.catch_up("customers", events)
    with engine.begin() as connection:
        connection.execute(delete(StreamCounts.counts))

    report = runner.rebuild(lambda _upstream: [events[0], forged(events[1], data={"name": "Mallory"}), events[1]])

    assert not report["repaired"] and "refused events that are not genuine" in report["refused"]
    assert counts(engine) == {}  # left as it was


def test_tracking_from_before_hashes_were_kept_takes_the_next_event(engine, store):
    runner = ConsumerRunner(engine, StreamCounts())
    first, second = append(store, "c1", name="Ann"), append(store, "c1", name="Eve")
    runner.handle("customers", first)
    with engine.begin() as connection:  # as migration 0002 leaves a row tracked before it
        connection.execute(update(projection_tracking).values(hash=None))

    assert runner.handle("customers", second) == "applied"
    with engine.connect() as connection:
        assert connection.execute(select(projection_tracking.c.hash)).scalar_one() == second.hash


def test_poison_event_is_dead_lettered_then_retried_once_fixed(engine, store):
    projection = StreamCounts(broken=True)
    runner = ConsumerRunner(engine, projection, max_attempts=3)
    dlq = DeadLetters(engine)
    ok, poison, later = (append(store, "c1", name="Ann"), append(store, "c2", name="Bob", poison=True),
                         append(store, "c1", name="Cy"))

    assert [runner.handle("customers", event) for event in (ok, poison, later)] == [
        "applied", "dead_lettered", "applied"]
    assert projection.attempts[poison.position] == 3
    assert counts(engine) == {"c1": (2, "Cy")}
    [letter] = dlq.list()
    assert (letter["consumer"], letter["upstream"], letter["position"], letter["type"], letter["attempts"]) == (
        "test.stream_counts", "customers", 2, "CustomerDetailsChanged", 3)
    assert poison_error(letter["error"])
    assert letter["envelope"] == poison.to_dict()
    assert dlq.count() == 1 and dlq.list(consumer="someone.else") == []

    retry = functools.partial(dlq.retry, letter["id"], runner.consumer.name, runner.apply_untracked)
    assert retry() == "failed"  # still broken: kept, one more attempt
    [still] = dlq.list()
    assert (still["attempts"], still["retried_at"]) == (4, None)
    assert counts(engine) == {"c1": (2, "Cy")}

    projection.broken = False
    assert retry() == "applied"
    assert counts(engine) == {"c1": (2, "Cy"), "c2": (1, "Bob")}
    assert dlq.count() == 0 and dlq.list() == []
    assert dlq.list(include_retried=True)[0]["retried_at"] is not None
    with pytest.raises(Conflict, match="already retried"):
        retry()
    assert runner.rebuild(lambda upstream: store.iter_since(0))["equal"]


def test_rebuild_of_a_consistent_projection_is_equal(engine, store):
    for n, stream_id in enumerate(["b", "B", "é", "中", "a b", "b", "中"]):
        append(store, stream_id, name=f"name {n}")
    runner = ConsumerRunner(engine, StreamCounts())
    assert runner.catch_up("customers", store.iter_since(runner.position("customers"))) == {"applied": 7}

    result = runner.rebuild(lambda upstream: store.iter_since(0))

    assert result["equal"] and not result["repaired"]
    assert result["events"] == 7 and result["positions"] == {"customers": 7}
    assert result["live_checksum"] == result["rebuilt_checksum"] == live_checksum(engine)


def test_rebuild_repairs_a_corrupted_projection(engine, store):
    fetch_since = fetch_from(store)
    runner = ConsumerRunner(engine, StreamCounts(), fetch_since=fetch_since)
    for n in range(6):
        runner.handle("customers", append(store, f"c{n % 3}", name=f"name {n}"))
    healthy = live_checksum(engine)
    with engine.begin() as connection:
        connection.execute(delete(StreamCounts.counts).where(StreamCounts.counts.c.stream_id == "c1"))

    result = runner.rebuild(lambda upstream: store.iter_since(0))

    assert not result["equal"] and result["repaired"]
    assert result["rebuilt_checksum"] == healthy == live_checksum(engine)
    assert result["live_checksum"] != healthy
    assert runner.position("customers") == 6
    assert runner.rebuild(lambda upstream: store.iter_since(0))["equal"]
    assert runner.handle("customers", append(store, "c1", name="after")) == "applied"
    assert counts(engine)["c1"] == (3, "after")


@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_out_of_order_handles_converge_to_sequential(engine, store, tmp_path, seed):
    events = [append(store, f"c{n % 5}", name=f"name {n}") for n in range(40)]
    sequential = create_store_engine(f"sqlite:///{tmp_path}/sequential.db")
    StreamCounts.metadata.create_all(sequential)
    ConsumerRunner(sequential, StreamCounts()).catch_up("customers", events)

    deliveries = events + random.Random(seed).sample(events, 15)  # at least once: some twice
    random.Random(seed).shuffle(deliveries)
    runner = ConsumerRunner(engine, StreamCounts(), fetch_since=fetch_from(store))
    pool = eventlet.GreenPool(8)
    outcomes = Counter()
    for event in deliveries:
        pool.spawn_n(lambda event: outcomes.update([runner.handle("customers", event)]), event)
    wait_all(pool)

    assert set(outcomes) <= {"applied", "duplicate"} and sum(outcomes.values()) == len(deliveries)
    assert runner.position("customers") == 40
    assert live_checksum(engine) == live_checksum(sequential)
    sequential.dispose()


def test_replicas_sharing_postgresql_apply_each_event_once(postgres_url):
    """Two runners with their own engines share no lock: the conditional tracking update keeps them apart."""
    engines = [create_store_engine(postgres_url) for _ in range(2)]
    create_tables(postgres_url)
    store = EventStore(engines[0], signer("customers"))
    events = [append(store, f"c{n % 3}", name=f"name {n}") for n in range(30)]
    replicas = [ConsumerRunner(engine, StreamCounts(), fetch_since=fetch_from(store)) for engine in engines]

    pool = eventlet.GreenPool(8)
    for n, event in enumerate(random.Random(7).sample(events * 2, 60)):
        pool.spawn_n(replicas[n % 2].handle, "customers", event)
    wait_all(pool)

    assert replicas[1].position("customers") == 30
    assert counts(engines[1]) == {"c0": (10, "name 27"), "c1": (10, "name 28"), "c2": (10, "name 29")}
    for engine in engines:
        engine.dispose()



def test_an_in_order_delivery_another_replica_applied_is_a_duplicate(engine, store):
    """A replica takes the next event without reading tracking; the conditional update still finds it taken."""
    first, second = ConsumerRunner(engine, StreamCounts()), ConsumerRunner(engine, StreamCounts())
    one, two = append(store, "c1", name="Ann"), append(store, "c1", name="Bob")
    assert first.handle("customers", one) == "applied"
    assert second.handle("customers", two) == "applied"

    assert first.handle("customers", two) == "duplicate"  # next in line for ``first``, applied by ``second``
    assert counts(engine) == {"c1": (2, "Bob")}
    assert first.position("customers") == 2

def test_replicas_sharing_a_backlog_fill_gaps_a_page_at_a_time(postgres_url):
    """Two replicas, each delivered every other event of a backlog, pull pages instead of one event per gap."""
    engines = [create_store_engine(postgres_url) for _ in range(2)]
    create_tables(postgres_url)
    store = EventStore(engines[0], signer("customers"))
    events = [append(store, f"c{n % 3}", name=f"name {n}") for n in range(1200)]
    fetches = [fetch_from(store) for _ in engines]
    replicas = [ConsumerRunner(engine, StreamCounts(), fetch_since=fetch) for engine, fetch in zip(engines, fetches)]

    pool = eventlet.GreenPool(2)
    for replica, delivered in zip(replicas, (events[0::2], events[1::2])):
        pool.spawn_n(lambda replica, delivered: [replica.handle("customers", event) for event in delivered],
                     replica, delivered)
    wait_all(pool)

    assert replicas[0].position("customers") == 1200
    assert counts(engines[1]) == {"c0": (400, "name 1197"), "c1": (400, "name 1198"), "c2": (400, "name 1199")}
    assert sum(len(fetch.calls) for fetch in fetches) <= 2 * (1200 // GAP_PAGE + 1)
    for engine in engines:
        engine.dispose()


def test_checksum_is_identical_on_sqlite_and_postgresql(sqlite_url, postgres_en_us_url):
    """en-US sorts "B" after "a b" and "b", code-point order before them; the checksum must not care."""
    rows = [{"stream_id": key, "events": n, "last_name": name, "poisoned": n % 2 == 0}
            for n, (key, name) in enumerate([("b", "x"), ("B", None), ("é", "中文"), ("中", ""), ("a b", "q\n")])]
    sums = []
    for url in (sqlite_url, postgres_en_us_url):
        engine = create_store_engine(url)
        create_tables(url)
        with engine.begin() as connection:
            connection.execute(insert(StreamCounts.counts), rows)
        sums.append(live_checksum(engine))
        engine.dispose()
    assert sums[0] == sums[1]


# -- events that may not be parked, and reactions ------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ErasureCounts(StreamCounts):
    """Like ``StreamCounts``, but a poisoned event stands for an erasure: it may never be parked."""

    name = "test.erasure_counts"

    def may_park(self, envelope: Envelope) -> bool:
        return False


def test_an_event_that_may_not_be_parked_stalls_and_is_retried_with_back_off(engine, store):
    clock = FakeClock()
    projection = ErasureCounts(broken=True)
    runner = ConsumerRunner(engine, projection, max_attempts=3, clock=clock)
    ok, erasure, later = (append(store, "c1", name="Ann"), append(store, "c2", name="Bob", poison=True),
                          append(store, "c1", name="Cy"))

    assert [runner.handle("customers", event) for event in (ok, erasure, later)] == [
        "applied", "stalled", "stalled"]
    assert projection.attempts[erasure.position] == 3 and projection.attempts[later.position] == 0
    stalled = runner.stalled()["customers"]
    assert poison_error(stalled.pop("error"))
    assert stalled == {"position": 2, "type": "CustomerDetailsChanged", "attempts": 3, "retry_in_seconds": 0.5}
    assert runner.position("customers") == 1 and DeadLetters(engine).count() == 0

    clock.now = 0.4  # not due yet: nothing is tried
    assert runner.catch_up("customers", store.iter_since(1)) == {}
    assert projection.attempts[erasure.position] == 3 and runner.due_retries() == []
    clock.now = 0.5  # due: one more try, then twice the wait
    assert runner.due_retries() == ["customers"]
    assert runner.catch_up("customers", store.iter_since(1)) == {"stalled": 1}
    assert runner.stalled()["customers"]["attempts"] == 4
    assert runner.stalled()["customers"]["retry_in_seconds"] == 1.0

    projection.broken = False  # the fault clears
    clock.now = 1.5
    assert runner.catch_up("customers", store.iter_since(1)) == {"applied": 2}
    assert runner.stalled() == {} and runner.position("customers") == 3
    assert counts(engine) == {"c1": (2, "Cy"), "c2": (1, "Bob")}


def test_a_rebuild_that_would_park_an_event_refuses_to_repair(engine, store):
    projection = StreamCounts(broken=True)
    runner = ConsumerRunner(engine, projection)
    runner.catch_up("customers", [append(store, "c1", name="Ann"), append(store, "c2", name="Bob", poison=True)])
    with engine.begin() as connection:
        connection.execute(delete(StreamCounts.counts))
    before = live_checksum(engine)

    report = runner.rebuild(lambda upstream: store.iter_since(0))

    assert (report["equal"], report["repaired"], report["dead_lettered"]) == (False, False, 1)
    assert "could not apply 1 event" in report["refused"]
    assert "ValueError at tests/integration/test_projections.py" in report["refused"]
    assert live_checksum(engine) == before  # left as it was


class Effects(Reaction):
    """Records each effect it has, in the same transaction as its tracking."""

    name = "test.effects"
    table = Table("effects", MetaData(), Column("event_id", String(36), primary_key=True),
                  Column("times", Integer, nullable=False))

    def __init__(self):
        self.fail_next = 0

    @handles("customers", "CustomerDetailsChanged")
    def record(self, connection, envelope: Envelope) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("the mail server is away")
        connection.execute(insert(self.table).values(event_id=envelope.event_id, times=1))


def effects(engine) -> list[str]:
    with engine.connect() as connection:
        return [row.event_id for row in connection.execute(select(Effects.table))]


def test_a_reaction_runs_once_per_event_and_never_on_a_rebuild(engine, store, database_url):
    create_tables(database_url, Effects.table.metadata)
    reaction = Effects()
    runner = ConsumerRunner(engine, reaction, fetch_since=fetch_from(store))
    events = [append(store, "c1", name=f"name {n}") for n in range(3)]

    assert runner.catch_up("customers", events) == {"applied": 3}
    assert runner.catch_up("customers", events) == {"duplicate": 3}
    assert runner.handle("customers", events[1]) == "duplicate"
    assert effects(engine) == [event.event_id for event in events]
    with pytest.raises(ValueError, match="is a reaction"):
        runner.rebuild(lambda upstream: store.iter_since(0))
    assert len(effects(engine)) == 3


def test_a_failing_reaction_is_never_parked(engine, store, database_url):
    create_tables(database_url, Effects.table.metadata)
    clock = FakeClock()
    reaction = Effects()
    reaction.fail_next = 5
    runner = ConsumerRunner(engine, reaction, clock=clock)
    event = append(store, "c1", name="Ann")

    assert runner.handle("customers", event) == "stalled"
    clock.now = 10.0
    assert runner.handle("customers", event) == "stalled"
    assert runner.stalled()["customers"]["attempts"] == 4 and DeadLetters(engine).count() == 0
    clock.now = 20.0
    assert runner.handle("customers", event) == "stalled"
    clock.now = 30.0
    assert runner.handle("customers", event) == "applied"
    assert effects(engine) == [event.event_id] and runner.stalled() == {}
