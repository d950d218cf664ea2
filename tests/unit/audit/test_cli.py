"""``crm audit ...`` without a broker: RPC replaced where a command calls the service; verify-export needs none."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool
from typer.testing import CliRunner

from services.audit import cli
from services.audit.checkpoint import TreeHead, sign
from services.audit.export import make_bundle
from services.audit.ingest import ledger_for
from services.audit.ledger import metadata
from services.audit.queries import export_entries
from shared.cli import rpc
from shared.ed25519_text import public_key_text
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from shared.eventstore.tables import projection_tracking
from shared.signing import EventSigner


def entry(position: int) -> dict:
    return {"ledger_position": position, "recorded_at": "2026-11-28T20:00:00.000000Z", "service": "customers",
            "type": "CustomerTierChanged", "stream_id": "customer-c1", "actor": {"id": "ann", "role": "agent"},
            "customer_id": "c1"}


@pytest.fixture
def calls(monkeypatch):
    made = []

    def fake(service, method, **kwargs):
        made.append((service, method, kwargs))
        cursor, limit = kwargs.get("cursor", 0), kwargs.get("limit", 50)
        entries = [entry(position) for position in range(cursor + 1, min(cursor + limit, 2500) + 1)]
        return {"entries": entries, "next_cursor": entries[-1]["ledger_position"] if entries else cursor,
                "head": 2500, "more": len(entries) == limit}

    monkeypatch.setattr(cli, "rpc_call", fake)
    rpc.configure()
    yield made
    rpc.configure()


def run(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli.app, list(args))


def test_replay_jsonl_streams_every_page_up_to_the_head_once(calls):
    result = run("replay", "--customer", "c1", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["ledger_position"] for line in lines] == list(range(1, 2501))
    assert all(call[2]["filters"] == {"customer_id": "c1"} for call in calls)


def test_replay_as_a_table_shows_one_page_and_the_next_cursor(calls):
    result = run("replay", "--service", "customers", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "next cursor 3" in result.stdout and "CustomerTierChanged" in result.stdout
    assert calls == [("audit", "replay", {"filters": {"service": "customers"}, "cursor": 0, "limit": 3})]


@pytest.fixture
def bundle_file(tmp_path):
    """A real bundle: events of a real store, ingested into a ledger in memory, exported and signed."""
    producer, audit = EventSigner.generate("customers"), EventSigner.generate("audit")
    store = EventStore.open(f"sqlite:///{tmp_path / 'customers.db'}", producer)
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    projection_tracking.metadata.create_all(engine, tables=[projection_tracking])
    for tier in ("partner", "general", "cooperative"):
        store.append("customer-c1", [NewEvent("CustomerTierChanged", {"customer_id": "c1", "tier": tier})], None,
                     CommandContext("ann", "agent"))
    ledger = ledger_for(engine)
    with engine.begin() as connection:
        ledger.append(connection, store.read_since(0, 10, upcast=False))
    with engine.connect() as connection:
        head = TreeHead(3, ledger.root(connection, 3), "2026-11-28T20:00:00.000000Z")
    entries = export_entries(engine, ledger, {}, 10, 3)
    bundle = make_bundle(entries, sign(audit, head), audit, {"customers": [public_key_text(producer.public_key)]},
                         {}, "2026-11-28T20:00:01.000000Z", "auditor-1")
    store.close()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    key = tmp_path / "audit.pub"
    key.write_text(public_key_text(audit.public_key))
    return path, key


def test_verify_export_checks_a_bundle_offline_and_names_the_first_bad_entry(bundle_file):
    path, key = bundle_file
    good = CliRunner().invoke(cli.app, ["verify-export", str(path), "--pubkey", str(key)])
    assert good.exit_code == 0, good.output
    bundle = json.loads(path.read_text())
    bundle["entries"][1]["data"]["tier"] = "partner"
    path.write_text(json.dumps(bundle))
    bad = CliRunner().invoke(cli.app, ["verify-export", str(path), "--pubkey", key.read_text()])
    assert bad.exit_code == 1
    assert "edited" in bad.stdout and "first_bad_entry" in bad.stdout
    rpc.configure(json_output=True)
    try:
        as_json = json.loads(CliRunner().invoke(cli.app, ["verify-export", str(path), "--pubkey", str(key)]).stdout)
    finally:
        rpc.configure()
    assert (as_json["first_bad_entry"], as_json["ledger_position"]) == (1, 2)


def test_verify_export_refuses_a_file_that_is_no_bundle_naming_the_field(tmp_path, bundle_file):
    _path, key = bundle_file
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "carecrm-audit-export/1", "entries": []}))
    result = CliRunner().invoke(cli.app, ["verify-export", str(other), "--pubkey", str(key)])
    assert result.exit_code == 2
    assert "manifest" in result.stderr and "checkpoint" in result.stderr
