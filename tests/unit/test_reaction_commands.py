"""A reaction whose effect is a command on its own service's log (``acts_on`` + ``ReactionCommands``).

On a real SQLite store, the case where running the command inside the
tracking transaction would wait for the write lock that transaction holds.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.auth import Principal
from shared.command_fingerprints import fingerprint_key
from shared.commands import ReactionCommands, reaction_command_id
from shared.consumer_runner import ConsumerRunner
from shared.consumers import Projection, Reaction, acts_on
from shared.crypto import KeyRing
from shared.event_log import WorkerLog
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from tests.support import signer
from tests.unit.test_commands import COUNTER


class Provider(SimpleNamespace):
    """The parts of an ``EventLog`` the reaction's commands use."""

    def get_dependency(self, worker_ctx) -> WorkerLog:
        return WorkerLog(self, worker_ctx)


class CountRegistrations(Reaction):
    """Adds one to a counter of the service's own log for every customer registered upstream."""

    name = "test.count-registrations"

    def __init__(self, keys):
        super().__init__(keys)
        self.fail_next = 0
        self.runs = 0

    @acts_on("customers", "CustomerRegistered")
    def count(self, envelope) -> None:
        self.runs += 1
        command = {"command_id": reaction_command_id(self.name, envelope)}
        ReactionCommands(COUNTER, self.log, Principal("counters", "service"), "add", envelope).change(
            "registrations", command, lambda counter: [NewEvent("Added", {"by": 1})])
        if self.fail_next:  # the command is in the log, the tracking is not: a crash in between
            self.fail_next -= 1
            raise OSError("crashed before the tracking committed")


@pytest.fixture
def service(tmp_path):
    own = EventStore.open(f"sqlite:///{tmp_path / 'counters.db'}", signer("counters"))
    upstream = EventStore.open(f"sqlite:///{tmp_path / 'customers.db'}", signer("customers"))
    keys = KeyRing(own.engine, b"k" * 32)
    own.append("counter-registrations", [NewEvent("Added", {"by": 0})], 0, CommandContext("t", "admin", "c"))
    reaction = CountRegistrations(keys)
    reaction.bind(Provider(store=own, keys=keys, fingerprint_key=fingerprint_key(b"m" * 32)))
    clock = SimpleNamespace(now=0.0)
    runner = ConsumerRunner(own.engine, reaction, clock=lambda: clock.now)
    yield SimpleNamespace(own=own, upstream=upstream, reaction=reaction, runner=runner, clock=clock)
    own.close()
    upstream.close()


def register(store, number: int):
    return store.append(f"customer-{number}", [NewEvent("CustomerRegistered", {"customer_id": f"c{number}"})], 0,
                        CommandContext("t", "agent", f"corr-{number}")).envelopes[0]


def total(store) -> int:
    return sum(envelope.data["by"] for envelope in store.read_stream("counter-registrations"))


def test_the_effect_runs_once_per_event_caused_by_it_and_not_again_for_a_duplicate(service):
    events = [register(service.upstream, number) for number in range(3)]
    assert service.runner.catch_up("customers", events) == {"applied": 3}
    assert service.runner.handle("customers", events[1]) == "duplicate"
    assert total(service.own) == 3 and service.reaction.runs == 3
    added = service.own.read_stream("counter-registrations")[1]
    assert (added.causation_id, added.correlation_id) == (events[0].event_id, "corr-0")
    assert added.actor == {"id": "counters", "role": "service"}


def test_an_effect_repeated_after_a_crash_answers_its_first_result_and_appends_nothing(service):
    event = register(service.upstream, 1)
    service.reaction.fail_next = 3  # every try of the first round crashes after its command
    assert service.runner.handle("customers", event) == "stalled"
    assert total(service.own) == 1  # the command ran once, whatever the retries
    service.clock.now = 10.0  # the retry is due
    assert service.runner.handle("customers", event) == "applied"
    assert total(service.own) == 1 and service.reaction.runs == 4
    assert service.runner.handle("customers", event) == "duplicate"


def test_a_projection_may_not_have_effects():
    with pytest.raises(TypeError, match="is a projection"):
        class Sends(Projection):
            name = "test.sends"

            @acts_on("customers", "CustomerRegistered")
            def send(self, envelope) -> None:
                pass
