"""The audit ledger on real databases (SQLite and PostgreSQL): guarded, checked on ingest, tamper-evident.

The tamper tests play someone with database access: they lift the
ledger's guard (drop or disable its triggers, which needs the owner) and
edit, delete, swap or cut entries; ``verify`` must name the first bad
position each time, and an edited export bundle must name its first bad
entry offline.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.audit import ledger as ledger_module
from services.audit import merkle
from services.audit.checkpoint import TreeHead, sign
from services.audit.export import make_bundle, verify_bundle
from services.audit.ledger import entry_hash, ledger
from services.audit.queries import check_sources, export_entries, replay
from shared.ed25519_text import public_key_text
from shared.eventstore.envelope import content_hash
from tests.integration.audit_support import audited
from tests.support import signer

EVENTS_PER_PRODUCER = 12  # 24 entries


@pytest.fixture
def audit(database_url, tmp_path):
    with audited(database_url, tmp_path) as built:
        built.add_events(EVENTS_PER_PRODUCER)
        yield built


def lift_guard(audit) -> None:
    """What an attacker who owns the database does first."""
    with audit.owner.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_ledger DISABLE TRIGGER USER"))
        else:
            for verb in ("update", "delete", "replace"):
                connection.execute(text(f"DROP TRIGGER audit_ledger_refuse_{verb}"))


def rows(audit, *positions):
    with audit.engine.connect() as connection:
        return {row.position: dict(row._mapping) for row in connection.execute(
            ledger.select().where(ledger.c.position.in_(positions)))}


def test_a_genuine_ledger_verifies_and_chains_every_source(audit):
    report = audit.verify(every_signature=True)
    assert report.ok, report
    assert report.checked == 2 * EVENTS_PER_PRODUCER
    entries = replay(audit.engine, {}, 0, 100)["entries"]
    assert [entry["ledger_position"] for entry in entries] == list(range(1, 25))
    assert {entry["customer_id"] for entry in entries} == {"c-1"}, "complaint events inherit their stream's customer"


def test_entries_and_verify_read_page_by_page(audit, monkeypatch):
    monkeypatch.setattr(ledger_module, "VERIFY_PAGE", 5)
    assert audit.verify(every_signature=True).to_dict()["checked"] == 24
    assert audit.verify(from_position=4, to_position=17).to_dict() == {
        "ok": True, "checked": 14, "first_bad_position": None, "reason": None, "source": None}
    whole = replay(audit.engine, {}, 0, 100)["entries"]
    assert list(audit.ledger.entries(0, page=5)) == whole
    assert [entry["ledger_position"] for entry in audit.ledger.entries(3, 17, page=5)] == list(range(4, 18))
    assert list(audit.ledger.entries(24, page=5)) == []


def test_the_database_refuses_to_change_the_ledger(audit):
    audit.add_batch(["c-1", "c-2"])
    statements = ["UPDATE audit_ledger SET envelope = '{}' WHERE position = 1",
                  "DELETE FROM audit_ledger WHERE position = 1",
                  "UPDATE audit_tree SET hash = 'x' WHERE level = 1",
                  "UPDATE audit_ledger_customers SET customer_id = 'c-9' WHERE customer_id = 'c-2'",
                  "UPDATE audit_ledger_customers SET position = 1",
                  "DELETE FROM audit_ledger_customers WHERE customer_id = 'c-2'"]
    if audit.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_ledger_customers")
    else:
        statements.append("REPLACE INTO audit_ledger_customers (customer_id, position) "
                          "SELECT customer_id, position FROM audit_ledger_customers")
    for engine in {audit.engine, audit.owner}:  # the service role, and on PostgreSQL the owner too: triggers
        for statement in statements:
            with pytest.raises(DBAPIError):
                with engine.begin() as connection:
                    connection.execute(text(statement))
    if audit.engine.dialect.name == "postgresql":  # nor may the service role lift the guard: it owns no log
        with pytest.raises(DBAPIError):
            with audit.engine.begin() as connection:
                connection.execute(text("ALTER TABLE audit_ledger_customers DISABLE TRIGGER USER"))
    with audit.engine.connect() as connection:
        assert connection.execute(text("SELECT customer_id FROM audit_ledger_customers ORDER BY 1")).scalars().all() \
            == ["c-1", "c-2"]
    assert audit.verify().ok


def test_an_event_about_several_customers_is_in_each_ones_history_and_the_ledger_verifies(audit):
    audit.add_batch(["c-2", "c-3", "c-2"])
    audit.add_events(1, customer="c-3")
    batch = replay(audit.engine, {"type": "PiiAccessed"}, 0, 100)["entries"]
    assert [entry["data"]["customer_ids"] for entry in batch] == [["c-2", "c-3", "c-2"]]
    assert batch[0]["customer_id"] is None, "the entry's own column, which its hash covers, names no one"
    position = batch[0]["ledger_position"]
    for customer, expected in (("c-2", [position]), ("c-3", [position, position + 1, position + 2])):
        assert [entry["ledger_position"] for entry in replay(audit.engine, {"customer_id": customer}, 0, 100)[
            "entries"]] == expected
        with audit.engine.connect() as connection:
            size = audit.ledger.size(connection)
        assert position in [entry["ledger_position"] for entry in
                            export_entries(audit.engine, audit.ledger, {"customer_id": customer}, 100, size)]
    assert [entry["ledger_position"] for entry in replay(audit.engine, {"customer_id": "c-1"}, 0, 100)[
        "entries"]] == list(range(1, 2 * EVENTS_PER_PRODUCER + 1))
    pages = [replay(audit.engine, {"customer_id": "c-3"}, cursor, 1) for cursor in (0, position, position + 1)]
    assert [[entry["ledger_position"] for entry in page["entries"]] for page in pages] == [
        [position], [position + 1], [position + 2]]
    assert audit.verify(every_signature=True).ok


def edit_one_event(audit, connection) -> None:
    connection.execute(text("UPDATE audit_ledger SET envelope = replace(envelope, :genuine, :edited) "
                            "WHERE position = 9"), {"genuine": '"tier":"partner"', "edited": '"tier":"general"'})


def delete_one_entry(audit, connection) -> None:
    connection.execute(text("DELETE FROM audit_ledger WHERE position = 7"))


def swap_two_entries(audit, connection) -> None:
    swapped = rows(audit, 5, 11)
    connection.execute(text("DELETE FROM audit_ledger WHERE position IN (5, 11)"))
    for position, other in ((5, 11), (11, 5)):
        connection.execute(ledger.insert(), {**swapped[other], "position": position})


def cut_the_tail(audit, connection) -> None:
    connection.execute(text("DELETE FROM audit_ledger WHERE position > 20"))


def forge_a_signature_and_chain_again(audit, connection) -> None:
    """Someone without the producer's key: another key's signature, then the ledger's chain recomputed."""
    entries = [dict(row._mapping) for row in connection.execute(ledger.select().order_by(ledger.c.position))]
    entries[2]["signature"] = signer("complaints").sign(entries[2]["source_hash"])
    prev = entries[1]["hash"]
    for entry in entries[2:]:
        entry["prev_hash"] = prev
        entry["hash"] = prev = entry_hash(
            entry["position"], prev, entry["ingested_at"], entry["customer_id"], entry["source_service"],
            entry["source_position"], entry["source_prev_hash"], entry["source_hash"], entry["signature"],
            entry["type"], entry["stream_id"], entry["recorded_at"])
        connection.execute(ledger.update().where(ledger.c.position == entry["position"]),
                           {"signature": entry["signature"], "prev_hash": entry["prev_hash"], "hash": entry["hash"]})


@pytest.mark.parametrize("tamper, position, reason", [
    (edit_one_event, 9, "edited"),
    (forge_a_signature_and_chain_again, 3, "bad signature"),
    (delete_one_entry, 7, "missing"),
    (swap_two_entries, 5, "reordered"),
    (cut_the_tail, 21, "missing"),
], ids=["edit", "forged-signature", "delete", "swap", "truncate"])
@pytest.mark.parametrize("page", [ledger_module.VERIFY_PAGE, 4], ids=["one-page", "pages-of-4"])
def test_verify_names_the_first_bad_position_of_a_tampered_ledger(audit, tamper, position, reason, page, monkeypatch):
    # Pages of 4 put each bad position first on its page (5, 9, 21) or just before a page ends (3, 7).
    monkeypatch.setattr(ledger_module, "VERIFY_PAGE", page)
    lift_guard(audit)
    with audit.owner.begin() as connection:
        tamper(audit, connection)
    # A signature replaced on an entry whose content is intact is only seen when every signature is checked:
    # the sampled ones still vouch for the content through the producer's chain.
    report = audit.verify(every_signature=tamper is forge_a_signature_and_chain_again)
    assert (report.ok, report.first_bad_position) == (False, position)
    assert report.reason.startswith(reason), report.reason


def test_a_forged_or_unsigned_event_is_refused_and_never_recorded(audit):
    customers = audit.sources["customers"]
    genuine = customers.read_since(0, 1, upcast=False)[0]
    head = customers.head_position()
    last = customers.read_since(head - 1, 1, upcast=False)[0]
    forged = dataclasses.replace(genuine, position=head + 1, prev_hash=last.hash, event_id="f" * 8,
                                 data={"customer_id": "c-1", "tier": "potential_competitor"})
    forged = dataclasses.replace(forged, hash=content_hash(forged), signature=signer("complaints").sign(
        content_hash(forged)))  # hashed right, signed by the wrong service's key
    unsigned = dataclasses.replace(forged, signature=None)
    before = audit.ledger.size(audit.engine.connect())
    assert audit.runner.handle("customers", forged) == "refused"
    assert audit.runner.handle("customers", unsigned) == "refused"
    assert audit.runner.refused["customers"]["count"] == 2
    assert audit.runner.refused["customers"]["last_reason"] == "no signature"
    with audit.engine.connect() as connection:
        assert audit.ledger.size(connection) == before
    assert audit.verify().ok


def test_the_stored_tree_gives_the_same_heads_and_proofs_as_a_tree_in_memory(audit):
    entries = replay(audit.engine, {}, 0, 100)["entries"]
    memory = merkle.MemoryTree()
    for entry in entries:
        memory.append(merkle.leaf_hash(bytes.fromhex(entry["ledger_hash"])))
    with audit.engine.connect() as connection:
        for size in (1, 7, 16, 24):
            root = audit.ledger.root(connection, size)
            assert root == merkle.root_hash(memory.node, size)
            proof = audit.ledger.inclusion(connection, 5, size) if size >= 5 else None
            if proof:
                assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 4, size,
                                               [bytes.fromhex(value) for value in proof["path"]], root)
        path = [bytes.fromhex(value) for value in audit.ledger.consistency(connection, 7, 24)]
        assert merkle.verify_consistency(7, 24, audit.ledger.root(connection, 7), audit.ledger.root(connection, 24),
                                         path)


def bundle_of(audit):
    audit_signer = signer("audit")
    with audit.engine.connect() as connection:
        size = audit.ledger.size(connection)
        head = TreeHead(size, audit.ledger.root(connection, size), "2026-11-28T20:00:00.000000Z")
    checkpoint = sign(audit_signer, head)
    entries = export_entries(audit.engine, audit.ledger, {"service": "customers"}, 100, size)
    keys = {service: [public_key_text(signer(service).public_key)] for service in ("customers",)}
    return make_bundle(entries, checkpoint, audit_signer, keys, {"service": "customers"},
                       "2026-11-28T20:00:01.000000Z", "auditor-1"), public_key_text(audit_signer.public_key)


def test_an_export_verifies_offline_and_an_edited_one_names_its_first_bad_entry(audit):
    bundle, key = bundle_of(audit)
    assert verify_bundle(bundle, key) == {"ok": True, "checked": EVENTS_PER_PRODUCER, "first_bad_entry": None,
                                          "ledger_position": None, "reason": None}
    bundle["entries"][4]["data"]["tier"] = "general"
    report = verify_bundle(bundle, key)
    assert (report["ok"], report["first_bad_entry"]) == (False, 4)
    assert report["ledger_position"] == bundle["entries"][4]["ledger_position"]
    assert report["reason"].startswith("edited")


def test_an_export_missing_an_entry_or_signed_by_another_key_fails(audit):
    bundle, key = bundle_of(audit)
    del bundle["entries"][3]
    assert verify_bundle(bundle, key)["reason"].startswith("missing")
    bundle, _key = bundle_of(audit)
    assert not verify_bundle(bundle, public_key_text(signer("customers").public_key))["ok"]


def test_a_source_log_cut_short_or_recomputed_after_the_fact_is_named(audit):
    complaints = audit.sources["complaints"]

    def source(*, cut: bool = False, recomputed: bool = False):
        def fetch(upstream, after, limit):
            found = [envelope.to_dict() for envelope in audit.sources[upstream].read_since(after, limit, upcast=False)]
            if upstream == "complaints" and cut:
                return []
            if upstream == "complaints" and recomputed:
                return [{**found[0], "hash": "0" * 64}]
            return found
        return fetch

    assert check_sources(audit.engine, source()) == {"sources": {
        "complaints": {"ok": True, "checked_position": complaints.head_position()},
        "customers": {"ok": True, "checked_position": audit.sources["customers"].head_position()}}}
    last = replay(audit.engine, {"service": "complaints"}, 0, 100)["entries"][-1]["ledger_position"]
    cut = check_sources(audit.engine, source(cut=True))
    assert (cut["ok"], cut["first_bad_position"], cut["source"]) == (False, last, "complaints")
    assert cut["reason"].startswith("source cut short")
    recomputed = check_sources(audit.engine, source(recomputed=True))
    assert recomputed["reason"].startswith("source recomputed") and recomputed["sources"]["customers"]["ok"]
