"""The one command path (shared/commands.py) on a real SQLite store, without a broker."""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Sequence

import pytest

from shared.auth import Principal
from shared.command_fingerprints import fingerprint, fingerprint_key
from shared.commands import AggregateKind, Commands
from shared.crypto import KeyRing
from shared.errors import Conflict, NotFound
from shared.event_log import WorkerLog
from shared.eventstore.envelope import Envelope, NewEvent
from shared.eventstore.store import EventStore
from tests.support import signer


@dataclass(frozen=True)
class Counter:
    counter_id: str
    version: int = 0
    total: int = 0


FOLDS: list[str] = []


def fold(counter_id: str, envelopes: Sequence[Envelope]) -> Counter:
    FOLDS.append(counter_id)
    state = Counter(counter_id)
    for envelope in envelopes:
        state = replace(state, version=envelope.stream_version, total=state.total + envelope.data["by"])
    return state


COUNTER = AggregateKind(
    name="counter", stream_of=lambda counter_id: f"counter-{counter_id}", fold=fold,
    answer=lambda counter, appended: {"counter_id": counter.counter_id,
                                      "version": appended.version if appended else counter.version})


def add(by: int):
    return lambda counter: [NewEvent("Added", {"by": by})] if by else []


class Worker:
    """What nameko hands a ``Repository`` for one call: the worker's log, the method and the service instance."""

    def __init__(self, store: EventStore, keys: KeyRing):
        self.provider = SimpleNamespace(store=store, keys=keys, fingerprint_key=fingerprint_key(b"m" * 32))
        self.store = store

    def commands(self, method: str, request_id: str | None = None) -> Commands:
        worker_ctx = SimpleNamespace(entrypoint=SimpleNamespace(method_name=method),
                                     service=SimpleNamespace(principal=Principal("alice", "agent")),
                                     call_id_stack=["call-1"], call_id="call-1",
                                     data={"request_id": request_id} if request_id else {})
        return Commands(COUNTER, WorkerLog(self.provider, worker_ctx), worker_ctx)


@pytest.fixture
def worker(tmp_path):
    store = EventStore.open(f"sqlite:///{tmp_path / 'counters.db'}", signer("counters"))  # schema migrated
    yield Worker(store, KeyRing(store.engine, b"k" * 32))
    store.close()


def test_a_new_aggregate_is_created_and_changed(worker):
    created = worker.commands("add").create("c1", {"command_id": None}, add(2))
    assert created == {"counter_id": "c1", "version": 1}
    assert worker.commands("add").change("c1", {"command_id": None}, add(3)) == {"counter_id": "c1", "version": 2}
    assert worker.commands("get").load("c1").total == 5
    with pytest.raises(NotFound, match="no counter c2"):
        worker.commands("add").change("c2", {"command_id": None}, add(1))


def test_a_repeat_is_answered_before_anything_is_loaded(worker):
    command = {"command_id": "cmd-1", "by": 2}
    first = worker.commands("add").create("c1", command, add(2))
    head = worker.store.head_position()
    FOLDS.clear()

    def never(_counter):
        raise AssertionError("a repeat must not decide again")

    assert worker.commands("add").create("c1", command, never) == first
    assert FOLDS == [] and worker.store.head_position() == head


def test_a_repeat_gets_the_first_answer_though_the_aggregate_moved_on(worker):
    command = {"command_id": "cmd-1", "by": 2, "expected_version": 1}
    worker.commands("add").create("c1", {"command_id": None}, add(1))
    first = worker.commands("add").change("c1", command, add(2))
    worker.commands("add").change("c1", {"command_id": None}, add(5))
    assert worker.commands("add").change("c1", command, add(2)) == first == {"counter_id": "c1", "version": 2}
    assert worker.commands("get").load("c1").total == 8


@pytest.mark.parametrize("method, payload", [("add", {"by": 3}), ("subtract", {"by": 2})])
def test_a_command_id_reused_for_another_payload_or_method_is_a_conflict_that_writes_nothing(worker, method,
                                                                                            payload):
    worker.commands("add").create("c1", {"command_id": "cmd-1", "by": 2}, add(2))
    head = worker.store.head_position()
    with pytest.raises(Conflict, match="cmd-1 was already used for another method or payload"):
        worker.commands(method).change("c1", {"command_id": "cmd-1", **payload}, add(payload["by"]))
    assert worker.store.head_position() == head
    assert worker.commands("get").load("c1").total == 2


def test_a_command_that_decides_nothing_binds_its_id_all_the_same(worker):
    worker.commands("add").create("c1", {"command_id": None}, add(1))
    first = worker.commands("add").change("c1", {"command_id": "noop", "by": 0}, add(0))
    assert first == {"counter_id": "c1", "version": 1}
    worker.commands("add").change("c1", {"command_id": None}, add(4))
    assert worker.commands("add").change("c1", {"command_id": "noop", "by": 0}, add(0)) == first
    with pytest.raises(Conflict):
        worker.commands("add").change("c1", {"command_id": "noop", "by": 7}, add(7))


def test_events_carry_the_caller_and_the_call_chain(worker):
    worker.commands("add").create("c1", {"command_id": None}, add(1))
    [envelope] = worker.store.read_stream("counter-c1")
    assert envelope.actor == {"id": "alice", "role": "agent"} and envelope.causation_id == "call-1"


def test_the_fingerprint_binds_method_and_payload_but_not_the_command_id():
    key = fingerprint_key(b"m" * 32)
    assert fingerprint("add", {"by": 1, "command_id": "a"}, key) == fingerprint("add", {"command_id": "b", "by": 1}, key)
    assert fingerprint("add", {"by": 1}, key) != fingerprint("subtract", {"by": 1}, key)
    assert fingerprint("add", {"by": 1}, key) != fingerprint("add", {"by": 2}, key)


def test_the_fingerprint_cannot_be_recomputed_without_the_master_key():
    payload = {"phone": "13812345678"}
    ours, theirs = fingerprint_key(b"m" * 32), fingerprint_key(b"x" * 32)
    assert fingerprint("register", payload, ours) != fingerprint("register", payload, theirs)
    assert ours != b"m" * 32 and len(ours) == 32


def test_a_redelivered_request_without_a_command_id_runs_its_commands_once(worker):
    first_delivery = worker.commands("add", request_id="amqp-correlation-1")
    created = first_delivery.create("c1", {"command_id": None, "by": 1}, add(1))
    changed = first_delivery.change("c1", {"command_id": None, "by": 2}, add(2))
    head = worker.store.head_position()

    redelivery = worker.commands("add", request_id="amqp-correlation-1")
    assert redelivery.create("c1", {"command_id": None, "by": 1}, add(1)) == created
    assert redelivery.change("c1", {"command_id": None, "by": 2}, add(2)) == changed
    assert worker.store.head_position() == head
    assert worker.store.recorded_command("request:amqp-correlation-1:counter#2").result == changed

    another_request = worker.commands("add", request_id="amqp-correlation-2")
    assert another_request.change("c1", {"command_id": None, "by": 2}, add(2))["version"] == 3
