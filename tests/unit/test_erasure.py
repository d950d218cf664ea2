"""The erasure reaction and the scrub after it, on a real SQLite store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared import erasure
from shared.crypto import KeyRing
from shared.dead_letters import DeadLetters
from shared.erasure import DestroyDataKeyOnErasure, ScrubAfterErasures
from shared.eventstore.engine import create_store_engine
from shared.eventstore.envelope import Envelope


@pytest.fixture
def engine(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'service.db'}")
    yield engine
    engine.dispose()


def envelope(position: int, event_type: str, customer_id: str) -> Envelope:
    return Envelope(event_id=f"e{position}", type=event_type, schema_version=1, service="customers",
                    stream_id=f"customer-{customer_id}", stream_version=1, position=position,
                    occurred_at="2026-01-01T00:00:00Z", recorded_at="2026-01-01T00:00:00Z",
                    actor={"id": "dpo", "role": "admin"}, correlation_id="c", causation_id=None,
                    data={"customer_id": customer_id}, prev_hash="0" * 64, hash=f"{position:064d}")


def test_the_reaction_shreds_the_key_and_deletes_the_dead_letters_about_the_customer(engine):
    keys, letters = KeyRing(engine, b"m" * 32), DeadLetters(engine)
    keys.create("c1")
    for position, customer_id in ((1, "c1"), (2, "c10"), (3, "c2")):
        letters.record("x.list", "customers", envelope(position, "CustomerRegistered", customer_id),
                       "IntegrityError at x.py:1 in apply", 3)
    reaction = DestroyDataKeyOnErasure(keys)
    with engine.begin() as connection:
        reaction.apply(connection, envelope(4, "CustomerErased", "c1"))
    assert keys.is_destroyed("c1") and reaction.erased_through == 4
    assert [letter["envelope"]["data"]["customer_id"] for letter in letters.list()] == ["c10", "c2"]


class Follower:
    def __init__(self, consumer, position: int = 0):
        self.consumer, self.at = consumer, position

    def position(self, upstream: str) -> int:
        return self.at


@pytest.fixture
def scrubs(monkeypatch):
    calls = []
    monkeypatch.setattr(erasure, "scrub", lambda engine, tables: calls.append([t.name for t in tables]) or True)
    return calls


def test_files_are_scrubbed_after_every_follower_applied_an_erasure(engine, scrubs):
    reaction = DestroyDataKeyOnErasure(KeyRing(engine, b"m" * 32))
    directory = SimpleNamespace(upstreams=("customers",), personal_data=(SimpleNamespace(name="customer_directory"),))
    reacting, projecting = Follower(reaction), Follower(directory)
    scrub_after = ScrubAfterErasures(engine, [reacting, projecting])

    scrub_after.run_when_settled()
    assert scrubs == []  # no key was ever destroyed: nothing to scrub at start-up

    reaction.erased_through, reacting.at = 7, 7
    scrub_after.run_when_settled()
    assert scrubs == []  # the directory has not dropped the plain values yet
    projecting.at = 7
    scrub_after.run_when_settled()
    assert scrubs == [["data_keys", "dead_letters", "customer_directory"]]
    scrub_after.run_when_settled()
    assert len(scrubs) == 1  # nothing erased since


def test_a_scrub_a_crash_cut_short_runs_first_at_the_next_start(engine, scrubs):
    keys = KeyRing(engine, b"m" * 32)
    keys.destroy("c1")  # erased, and the process stopped before it scrubbed
    ScrubAfterErasures(engine, [Follower(DestroyDataKeyOnErasure(keys))]).run_when_settled()
    assert len(scrubs) == 1
    ScrubAfterErasures(engine, [Follower(DestroyDataKeyOnErasure(keys))]).run_when_settled()
    assert len(scrubs) == 1  # the next start finds the files scrubbed after that key
