"""Signed events: signing, the consumers' check, and ``verify`` finding a chain recomputed without the key."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

import shared.eventstore.store as store_module
from shared.canonical import canonical_json
from shared.eventstore.envelope import CommandContext, Envelope, NewEvent, content_hash
from shared.eventstore.store import EventStore
from shared.signing import EventCheck, EventSigner, ServiceKeys

CONTEXT = CommandContext("agent-1", "agent")
CUSTOMERS = EventSigner.generate("customers")
FORGER = EventSigner.generate("customers")  # claims to be customers, with a key nobody listed
KEYS = ServiceKeys.of(CUSTOMERS)


@pytest.fixture
def store(tmp_path):
    store = EventStore.open(f"sqlite:///{tmp_path / 'customers.db'}", CUSTOMERS)
    yield store
    store.close()


def fill(store: EventStore, count: int) -> list[Envelope]:
    for number in range(count):
        store.append(f"customer-{number}", [NewEvent("CustomerRegistered", {"name": f"customer {number}"})], 0,
                     CONTEXT)
    return store.read_since(0, count)


def forged(envelope: Envelope, signer: EventSigner | None = FORGER, **changes) -> Envelope:
    """``envelope`` with ``changes``, its hash recomputed and signed by ``signer`` (unsigned if None)."""
    changed = dataclasses.replace(envelope, **changes)
    changed = dataclasses.replace(changed, hash=content_hash(changed))
    return dataclasses.replace(changed, signature=signer.sign(changed.hash) if signer else None)


# -- keys and signatures ------------------------------------------------------------------

def test_a_signature_verifies_only_with_its_own_key_and_over_its_own_hash():
    event_hash = "ab" * 32
    signature = CUSTOMERS.sign(event_hash)
    assert len(signature) == 88 and KEYS.signed_by("customers", event_hash, signature)
    assert not KEYS.signed_by("customers", "cd" * 32, signature)
    assert not KEYS.signed_by("customers", event_hash, FORGER.sign(event_hash))
    assert not KEYS.signed_by("complaints", event_hash, signature)  # no key for that service
    for malformed in (None, "", "A" * 88, signature[:-4]):
        assert not KEYS.signed_by("customers", event_hash, malformed)


def test_while_a_key_is_rotated_both_keys_are_accepted():
    rotated = ServiceKeys({"customers": [FORGER.public_key, CUSTOMERS.public_key]})
    assert rotated.signed_by("customers", "ab" * 32, CUSTOMERS.sign("ab" * 32))
    assert rotated.signed_by("customers", "ab" * 32, FORGER.sign("ab" * 32))


# -- the consumers' check -------------------------------------------------------------------

def test_appended_events_are_genuine_and_survive_the_wire(store):
    check = EventCheck(KEYS)
    for envelope in fill(store, 3):
        assert check.refusal("customers", envelope) is None
        wire = canonical_json(envelope.to_dict())  # as the relay and events_since send it
        assert check.refusal("customers", Envelope(**json.loads(wire))) is None


def test_forged_events_are_refused_with_the_reason(store):
    genuine = fill(store, 1)[0]
    check = EventCheck(KEYS)
    erased = {"type": "CustomerErased", "data": {"customer_id": "1"}}
    assert check.refusal("customers", forged(genuine, **erased)) == "bad signature"
    assert check.refusal("customers", forged(genuine, None, **erased)) == "no signature"
    assert check.refusal("customers", dataclasses.replace(genuine, data={"name": "edited"})) == \
        "hash does not match the event's content"
    assert check.refusal("customers", forged(genuine, CUSTOMERS, service="audit")) == \
        "a audit event delivered as customers's"
    assert EventCheck(ServiceKeys({})).refusal("customers", genuine) == "no public key for customers"
    assert check.refusal("customers", dataclasses.replace(genuine, event_id=7)).startswith("malformed envelope")


def test_the_own_log_is_not_checked_but_its_producer_still_must_match(store):
    genuine = fill(store, 1)[0]
    own = EventCheck(ServiceKeys({}), own_service="customers")
    assert own.refusal("customers", forged(genuine, None, data={"x": 1})) is None
    assert own.refusal("complaints", genuine) == "a customers event delivered as complaints's"


def test_a_chained_batch_is_vouched_for_by_its_last_signature(store):
    batch = fill(store, 5)
    check = EventCheck(KEYS)
    assert check.vouched("customers", batch)
    unsigned_middle = [*batch[:2], dataclasses.replace(batch[2], signature=None), *batch[3:]]
    assert check.vouched("customers", unsigned_middle)  # its content is vouched for through the chain
    assert not check.vouched("customers", [*batch[:-1], forged(batch[-1])])
    assert not check.vouched("customers", [*batch[:2], forged(batch[2], data={}), *batch[3:]])  # breaks the chain
    assert not check.vouched("customers", [*batch[:2], dataclasses.replace(batch[2], data={}), *batch[3:]])
    assert not check.vouched("customers", [*batch[:-1], dataclasses.replace(batch[-1], data={})])
    assert not check.vouched("customers", [batch[0], batch[2]])
    assert not check.vouched("complaints", batch) and not check.vouched("customers", [])


# -- verify_log and a chain recomputed by someone without the key -------------------------------

def rewrite_from(path, first: int, signer: EventSigner | None) -> None:
    """Edit the event at ``first`` and recompute the chain to the head, in the SQLite file itself.

    The append-only triggers are dropped first, as someone with the file
    would; each rewritten event is signed by ``signer``, or keeps the
    signature it had (over its old hash) when there is none.
    """
    with sqlite3.connect(path) as database:
        database.execute("DROP TRIGGER events_refuse_update")
        database.execute("DROP TRIGGER events_refuse_delete")
        prev_hash = database.execute("SELECT hash FROM events WHERE position = ?", (first - 1,)).fetchone()[0]
        rows = database.execute("SELECT * FROM events WHERE position >= ? ORDER BY position", (first,))
        columns = [column[0] for column in rows.description]
        for row in rows.fetchall():
            stored = dict(zip(columns, row))
            data = {"name": "forged"} if stored["position"] == first else json.loads(stored["data"])
            envelope = Envelope(**{**stored, "actor": json.loads(stored["actor"]), "data": data,
                                   "prev_hash": prev_hash})
            prev_hash = content_hash(envelope)
            database.execute("UPDATE events SET data = ?, prev_hash = ?, hash = ?, signature = ? WHERE position = ?",
                             (canonical_json(data), envelope.prev_hash, prev_hash,
                              signer.sign(prev_hash) if signer else stored["signature"], stored["position"]))


@pytest.mark.parametrize("signer", [FORGER, None], ids=["signed-by-another-key", "old-signatures-kept"])
def test_verify_names_the_first_event_of_a_chain_recomputed_without_the_key(store, tmp_path, monkeypatch, signer):
    monkeypatch.setattr(store_module, "SIGNATURE_SAMPLE", 8)
    fill(store, 30)
    rewrite_from(tmp_path / "customers.db", 13, signer)
    expected = {"ok": False, "checked": 12, "first_bad_position": 13, "reason": "bad signature"}
    assert store.verify().to_dict() == expected
    assert store.verify(every_signature=True).to_dict() == expected
    assert store.verify(1, 12).ok
    assert store.verify(from_position=5).to_dict() == {**expected, "checked": 8}


def test_a_damaged_signature_on_an_intact_event_is_found_only_checking_every_signature(store, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setattr(store_module, "SIGNATURE_SAMPLE", 8)
    fill(store, 20)
    with sqlite3.connect(tmp_path / "customers.db") as database:
        database.execute("DROP TRIGGER events_refuse_update")
        database.execute("UPDATE events SET signature = NULL WHERE position = 5")
    assert store.verify().ok  # position 8's signature vouches for 5's content through the chain
    assert store.verify(every_signature=True).to_dict() == {"ok": False, "checked": 4, "first_bad_position": 5,
                                                            "reason": "no signature"}
