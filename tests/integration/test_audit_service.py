"""The audit service end to end, beside the real customers and complaints services.

All three run against real RabbitMQ (a virtual host per test) and real
databases, one per service. The audit service learns of the others through
discovery, takes their events from the broker (and pulls what it missed
with ``events_since``), and answers auditors over RPC. Nothing sleeps: the
tests wait until the ledger has caught up with the producers' heads.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kombu import Connection
from nameko.testing.services import entrypoint_waiter

from services.audit import merkle
from services.audit.checkpoint import open_note
from services.audit.export import verify_bundle
from services.audit.service import AuditService
from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.consumers import as_envelope
from shared.ed25519_text import public_key_from_text
from shared.eventstore.envelope import content_hash, utc_now_iso
from shared.signing import EventSigner
from tests import support
from tests.support import private_vhost, running, service_config, wait_for

ALICE = {"name": "李秀英", "phone": "13812345678", "email": "lixiuying@example.com", "tier": "general"}
LEAK = {"channel": "phone", "category": "after_sales", "summary": "洗衣机漏水", "description": "第一次使用就漏水",
        "urgency": "medium"}
COMPARED = ("version", "status", "tier", "consents", "tags", "locale", "timezone", "birthday_calendar",
            "registered_at", "updated_at", "erasure")


@pytest.fixture
def amqp_uri():
    with private_vhost(f"crm-audit-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


def _config(tmp_path: Path, amqp_uri: str, url_of) -> dict:
    return service_config(tmp_path, amqp_uri, customers=url_of("customers"), complaints=url_of("complaints"),
                          audit=url_of("audit"))


@pytest.fixture
def stack(tmp_path, amqp_uri):
    """The three services on SQLite files: their config and the audit container."""
    config = _config(tmp_path, amqp_uri, lambda name: f"sqlite:///{tmp_path / (name + '.db')}")
    with running(CustomersService, config), running(ComplaintsService, config), \
            running(AuditService, config) as audit:
        yield config, audit


@pytest.fixture
def crm(stack):
    return stack[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def crm_on_each_database(request, tmp_path, amqp_uri):
    if request.param == "sqlite":
        url_of = lambda name: f"sqlite:///{tmp_path / (name + '.db')}"  # noqa: E731
    else:
        make = request.getfixturevalue("postgres_url_factory")
        url_of = lambda _name: make()  # noqa: E731
    config = _config(tmp_path, amqp_uri, url_of)
    with running(CustomersService, config), running(ComplaintsService, config), running(AuditService, config):
        yield config


def call(config, role, method, *args, **kwargs):
    """A call by ``<role>-1``, so recorded queries name who asked."""
    return support.call(config, role, method, *args, **{"service": "audit", "actor": f"{role}-1", **kwargs})


def register(config, **changes) -> str:
    return call(config, "agent", "register", **{**ALICE, **changes}, service="customers")["customer_id"]


def caught_up(config) -> dict:
    """Wait until the ledger holds every event the customers and complaints services have logged."""
    heads = {service: call(config, "admin", "log_head", service=service)["position"]
             for service in ("customers", "complaints")}

    def applied():
        positions = call(config, "admin", "health")["reactions"]["audit.ledger"]["positions"]
        return all(positions.get(service, 0) >= head for service, head in heads.items()) and positions

    return wait_for(applied, timeout=20, what=f"the ledger to reach {heads}")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_every_services_events_reach_one_verifiable_ledger_with_signed_proofs(crm_on_each_database):
    crm = crm_on_each_database
    customer_id = register(crm)
    call(crm, "supervisor", "set_tier", customer_id, "partner", "大客户", service="customers")
    complaint = call(crm, "agent", "file", customer_id, **LEAK, service="complaints")["complaint_id"]
    call(crm, "supervisor", "assign", complaint, "agent-li", service="complaints")
    call(crm, "agent", "get", customer_id, service="customers")  # a read in clear: recorded as PiiAccessed
    caught_up(crm)

    history = call(crm, "auditor", "customer_history", customer_id)["entries"]
    kinds = [(entry["service"], entry["type"]) for entry in history]
    assert ("customers", "CustomerRegistered") in kinds and ("customers", "CustomerTierChanged") in kinds
    assert ("customers", "PiiAccessed") in kinds
    assert ("complaints", "ComplaintFiled") in kinds and ("complaints", "ComplaintAssigned") in kinds
    assert [entry["ledger_position"] for entry in history] == sorted(entry["ledger_position"] for entry in history)
    assert all(entry["data"].get("name", "enc:").startswith("enc:") for entry in history)  # PII stays sealed

    report = call(crm, "auditor", "verify", every_signature=True)
    assert report["ok"] and report["checked"] >= len(history), report
    assert {service: found["ok"] for service, found in report["sources"].items()} == \
        {"customers": True, "complaints": True}

    key = public_key_from_text(call(crm, "auditor", "pubkey")["public_key"])
    first = call(crm, "auditor", "checkpoint")
    head = open_note(first["note"], key)
    assert (head.tree_size, head.root_hash.hex()) == (first["tree_size"], first["root_hash"])
    assert base64.b64decode(first["signature"]) in base64.b64decode(first["note"].split(" ")[-1])
    position = history[0]["ledger_position"]
    proof = call(crm, "auditor", "prove", position, first)
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), position - 1, first["tree_size"],
                                   [bytes.fromhex(value) for value in proof["path"]], head.root_hash)

    call(crm, "agent", "respond", complaint, "已安排上门", service="complaints")
    caught_up(crm)
    later = call(crm, "admin", "checkpoint")
    assert later["tree_size"] > first["tree_size"]
    consistency = call(crm, "auditor", "consistency", first, later)
    assert merkle.verify_consistency(first["tree_size"], later["tree_size"], bytes.fromhex(first["root_hash"]),
                                     bytes.fromhex(later["root_hash"]),
                                     [bytes.fromhex(value) for value in consistency["path"]])
    forged = {**first, "root_hash": later["root_hash"]}
    assert remote_error(crm, "auditor", "prove", position, forged).exc_type == "ValidationError"

    recorded = [event for event in call(crm, "admin", "events_since", 0, 500) if event["type"] == "AuditQueried"]
    assert {(event["data"]["method"], event["actor"]["id"]) for event in recorded} >= {
        ("customer_history", "auditor-1"), ("verify", "auditor-1"), ("prove", "auditor-1"),
        ("checkpoint", "admin-1")}


def test_a_batch_reveal_is_one_entry_in_each_revealed_customers_history(crm_on_each_database):
    crm = crm_on_each_database
    revealed = [register(crm, name=f"李{number}") for number in range(3)]
    other = register(crm)
    call(crm, "service", "reveal_contacts", revealed, "complaint_handling", service="customers")
    caught_up(crm)

    [batch] = call(crm, "auditor", "replay", {"type": "PiiAccessed"})["entries"]
    assert batch["data"]["customer_ids"] == revealed and batch["customer_id"] is None
    for customer_id in revealed:
        history = call(crm, "auditor", "customer_history", customer_id)["entries"]
        assert [entry["type"] for entry in history] == ["CustomerRegistered", "PiiAccessed"]
        assert history[1]["ledger_position"] == batch["ledger_position"]
        replayed = call(crm, "auditor", "replay", {"customer_id": customer_id, "service": "customers"})["entries"]
        assert [entry["ledger_position"] for entry in replayed] == [entry["ledger_position"] for entry in history]
        exported = call(crm, "auditor", "export", {"customer_id": customer_id})
        assert batch["ledger_position"] in [entry["ledger_position"] for entry in exported["entries"]]
        assert verify_bundle(exported, call(crm, "auditor", "pubkey")["public_key"])["ok"]
    assert [entry["type"] for entry in call(crm, "auditor", "customer_history", other)["entries"]] == [
        "CustomerRegistered"]
    report = call(crm, "auditor", "verify", every_signature=True)
    assert report["ok"], report


def remote_error(config, role, method, *args, **kwargs):
    return support.remote_error(config, role, method, *args, **{"service": "audit", "actor": f"{role}-1", **kwargs})


def test_only_auditors_and_admins_may_call_the_audit_service(crm):
    for role in ("agent", "supervisor", "operator", "service"):
        assert remote_error(crm, role, "replay").exc_type == "Forbidden"
        assert remote_error(crm, role, "export").exc_type == "Forbidden"
    assert call(crm, "auditor", "replay")["entries"] == []
    assert remote_error(crm, "auditor", "replay", {"service": "Not A Name"}).exc_type == "ValidationError"


def test_state_as_of_any_instant_is_what_the_customers_service_said_then(crm):
    customer_id = register(crm, tags=["vip"], consents=["marketing"])
    said = []

    def snapshot():
        said.append((call(crm, "auditor", "get", customer_id, service="customers"), now()))

    snapshot()
    call(crm, "supervisor", "set_tier", customer_id, "partner", "年度大客户", service="customers")
    snapshot()
    call(crm, "agent", "give_consent", customer_id, "callbacks", service="customers")
    snapshot()
    version = said[-1][0]["version"]
    call(crm, "agent", "update", customer_id, {"tags": ["vip", "北京"]}, version, service="customers")
    call(crm, "agent", "withdraw_consent", customer_id, "marketing", service="customers")
    snapshot()
    caught_up(crm)
    for view, instant in said:
        rebuilt = call(crm, "auditor", "state_as_of", customer_id, instant)["record"]
        assert {key: rebuilt.get(key) for key in COMPARED} == {key: view.get(key) for key in COMPARED}, instant
        assert "name" not in rebuilt and "name" in rebuilt["sealed_fields"]
    assert remote_error(crm, "auditor", "state_as_of", customer_id, "2000-01-01T00:00:00Z").exc_type == "NotFound"


def test_a_replay_cursor_across_concurrent_appends_misses_and_repeats_nothing(crm):
    register(crm)
    done = threading.Event()

    def keep_registering():
        for number in range(25):
            register(crm, phone=f"1390000{number:04d}")
        done.set()

    writer = threading.Thread(target=keep_registering)
    writer.start()
    seen, cursor = [], 0
    try:
        while not done.is_set() or len(seen) < call(crm, "auditor", "replay", limit=1)["head"]:
            page = call(crm, "auditor", "replay", {"service": "customers"}, cursor, 3)
            seen.extend(entry["ledger_position"] for entry in page["entries"])
            cursor = page["next_cursor"]
            if done.is_set():
                caught_up(crm)
    finally:
        writer.join()
    expected = [entry["ledger_position"] for entry in
                call(crm, "auditor", "replay", {"service": "customers"}, 0, 5000)["entries"]]
    assert seen == expected and len(set(seen)) == len(seen) >= 26


def test_after_an_erasure_the_ledger_and_export_verify_and_the_receipt_is_in_the_history(crm, tmp_path):
    customer_id = register(crm)
    call(crm, "agent", "file", customer_id, **LEAK, service="complaints")
    receipt = call(crm, "admin", "erase", customer_id, "subject_request", service="customers")["receipt"]
    caught_up(crm)

    history = call(crm, "auditor", "customer_history", customer_id)["entries"]
    erased = [entry for entry in history if entry["type"] == "CustomerErased"]
    assert len(erased) == 1 and erased[0]["data"]["receipt_id"] == receipt["receipt_id"]
    assert erased[0]["actor"]["id"] == "admin-1" and erased[0]["data"]["reason"] == "subject_request"
    assert call(crm, "auditor", "verify")["ok"]

    bundle = call(crm, "auditor", "export", {"customer_id": customer_id})
    key = call(crm, "auditor", "pubkey")["public_key"]
    assert verify_bundle(bundle, key)["ok"] and bundle["manifest"]["count"] == len(history)
    ledger_files = b"".join(path.read_bytes() for path in tmp_path.glob("audit.db*"))
    for text in (ALICE["name"], ALICE["phone"], ALICE["email"], LEAK["description"]):
        assert text.encode() not in ledger_files, text
    recorded = [event["data"] for event in call(crm, "admin", "events_since", 0, 500)
                if event["type"] == "AuditQueried" and event["data"]["method"] == "export"]
    assert recorded and recorded[-1]["arguments"]["filters"]["customer_id"] == customer_id


@pytest.mark.parametrize("forger", [None, EventSigner.generate("customers")], ids=["unsigned", "another-key"])
def test_a_forged_event_on_the_broker_is_refused_reported_and_never_recorded(stack, amqp_uri, forger):
    crm, audit = stack
    customer_id = register(crm)
    caught_up(crm)
    head_position = call(crm, "admin", "log_head", service="customers")["position"]
    head = call(crm, "admin", "events_since", head_position - 1, 1, service="customers")[0]
    now = utc_now_iso()
    envelope = dataclasses.replace(as_envelope(head), event_id=str(uuid.uuid4()), type="CustomerTierChanged",
                                   stream_id=f"customer-{customer_id}", position=head["position"] + 1,
                                   occurred_at=now, recorded_at=now, prev_hash=head["hash"],
                                   data={"customer_id": customer_id, "tier": "potential_competitor"})
    body = {**envelope.to_dict(), "hash": content_hash(envelope)}
    body["signature"] = forger.sign(body["hash"]) if forger else None

    def is_it(worker_ctx, _result, _exc_info) -> bool:
        return worker_ctx.args[0].get("event_id") == body["event_id"]

    with entrypoint_waiter(audit, "on_upstream_event", timeout=30, callback=is_it):
        with Connection(amqp_uri) as connection:
            connection.Producer(serializer="json").publish(body, exchange="customers.events",
                                                           routing_key=body["type"], retry=True)
    refused = call(crm, "admin", "health")["reactions"]["audit.ledger"]["refused"]["customers"]
    assert (refused["count"], refused["last_event_id"]) == (1, body["event_id"])
    if forger:
        assert refused["last_reason"] == "bad signature"
    else:  # refused at the edge: an envelope must carry a signature
        assert refused["last_reason"].startswith("malformed envelope") and "signature" in refused["last_reason"]
    call(crm, "supervisor", "set_tier", customer_id, "partner", "真实的变更", service="customers")
    caught_up(crm)
    recorded = call(crm, "auditor", "customer_history", customer_id)["entries"]
    assert body["event_id"] not in {entry["event_id"] for entry in recorded}
    assert recorded[-1]["type"] == "CustomerTierChanged" and recorded[-1]["data"]["tier"] == "partner"
    assert call(crm, "auditor", "verify")["ok"]
