"""The customers service end to end: real RabbitMQ, real SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.exceptions import RemoteError
from nameko.rpc import rpc

from services.customers.service import CustomersService
from shared.auth import issue_token
from tests import support
from tests.support import ISSUER_KEY, event_log, rpc_as, running, service_config, wait_for

call = functools.partial(support.call, service="customers")
remote_error = functools.partial(support.remote_error, service="customers")

ALICE = {"name": "张伟", "phone": "13812345678", "email": "zhangwei@example.com", "birthday": "1985-03-08",
         "tier": "general", "tags": ["vip", "beijing"], "consents": ["callbacks"]}


@pytest.fixture
def customers(tmp_path, database_url, amqp_uri):
    config = service_config(tmp_path, amqp_uri, customers=database_url)
    with running(CustomersService, config):
        yield config


def caught_up(config):
    health = call(config, "admin", "health")
    return all(p["lag"] == 0 for p in health["projections"].values()) and health


def test_register_then_get_unmasked_for_agents_and_masked_for_operators_auditors_and_services(customers):
    created = call(customers, "agent", "register", **ALICE)
    assert created["version"] == 1
    agent_view = call(customers, "agent", "get", created["customer_id"])
    assert (agent_view["name"], agent_view["phone"], agent_view["email"]) == ("张伟", "13812345678", "zhangwei@example.com")
    assert agent_view["birthday"] == "1985-03-08"
    assert agent_view["consents"] == ["callbacks"] and agent_view["tags"] == ["vip", "beijing"]
    for role in ("operator", "auditor", "service"):
        masked = call(customers, role, "get", created["customer_id"])
        assert (masked["name"], masked["phone"], masked["email"], masked["birthday"]) == (
            "张*", "138****5678", "z***@example.com", "1985-**-**"), role
    accesses = [e for e in call(customers, "admin", "events_since", 0, 100) if e["type"] == "PiiAccessed"]
    assert len(accesses) == 1 and accesses[0]["actor"]["role"] == "agent"
    assert accesses[0]["data"]["fields"] == ["name", "phone", "email", "birthday"]


def test_pii_is_ciphertext_in_the_log_and_the_actor_is_recorded(customers):
    created = call(customers, "agent", "register", **ALICE)
    [registered] = [e for e in call(customers, "service", "events_since", 0, 10)
                    if e["stream_id"] == f"customer-{created['customer_id']}"]
    assert registered["data"]["phone"].startswith("enc:v2:") and registered["data"]["name"].startswith("enc:v2:")
    assert registered["data"]["tier"] == "general"
    assert registered["actor"] == {"id": "tester", "role": "agent"}


def test_update_with_expected_version_and_stale_version_conflict(customers):
    created = call(customers, "agent", "register", **ALICE)
    updated = call(customers, "agent", "update", created["customer_id"], {"email": "new@example.com"}, 1)
    assert updated["version"] == 2
    error = remote_error(customers, "agent", "update", created["customer_id"], {"name": "王芳"}, 1)
    assert error.exc_type == "Conflict" and "version 2" in error.value
    assert call(customers, "agent", "get", created["customer_id"])["email"] == "new@example.com"


def test_tier_and_consent_changes_with_roles(customers):
    created = call(customers, "agent", "register", **ALICE)
    customer_id = created["customer_id"]
    assert remote_error(customers, "agent", "set_tier", customer_id, "partner", "big deal").exc_type == "Forbidden"
    assert call(customers, "supervisor", "set_tier", customer_id, "partner", "framework contract")["version"] == 2
    assert call(customers, "agent", "give_consent", customer_id, "care_messages")["version"] == 3
    assert call(customers, "agent", "give_consent", customer_id, "care_messages")["version"] == 3  # no-op
    assert call(customers, "agent", "withdraw_consent", customer_id, "callbacks")["version"] == 4
    view = call(customers, "agent", "get", customer_id)
    assert view["tier"] == "partner" and view["consents"] == ["care_messages"]


def test_reveal_contact_needs_consent_for_the_purpose_and_is_recorded(customers):
    customer_id = call(customers, "agent", "register", **ALICE)["customer_id"]
    error = remote_error(customers, "service", "reveal_contact", customer_id, "care_messages")
    assert error.exc_type == "Forbidden" and "care_messages" in error.value
    contact = call(customers, "service", "reveal_contact", customer_id, "callbacks")
    assert (contact["name"], contact["phone"]) == ("张伟", "13812345678") and "birthday" not in contact
    accesses = [e["data"] for e in call(customers, "admin", "events_since", 0, 100) if e["type"] == "PiiAccessed"]
    assert {"purpose": "callbacks", "method": "reveal_contact",
            "fields": ["name", "phone", "email"]}.items() <= accesses[-1].items()


def test_reveal_contacts_reveals_a_batch_in_one_append_and_lists_the_refused(customers):
    caring = [call(customers, "agent", "register", **{**ALICE, "name": f"张{i}", "consents": ["care_messages"]})
              ["customer_id"] for i in range(3)]
    silent = call(customers, "agent", "register", **ALICE)["customer_id"]
    erased = call(customers, "agent", "register", **{**ALICE, "consents": ["care_messages"]})["customer_id"]
    call(customers, "admin", "erase", erased, "subject_request")
    head = call(customers, "admin", "health")["log_position"]
    answer = call(customers, "service", "reveal_contacts", [*caring, silent, erased, "nobody"], "care_messages")
    assert [c["customer_id"] for c in answer["contacts"]] == caring
    assert answer["contacts"][1]["name"] == "张1" and answer["contacts"][1]["birthday"] == "1985-03-08"
    assert answer["refused"] == [{"customer_id": silent, "reason": "no_consent"},
                                 {"customer_id": erased, "reason": "erased"},
                                 {"customer_id": "nobody", "reason": "unknown"}]
    [recorded] = call(customers, "admin", "events_since", head, 100)  # one event for the whole batch
    assert recorded["type"] == "PiiAccessed" and recorded["stream_id"].startswith("pii-access-batch-")
    assert recorded["data"] == {"customer_ids": caring, "purpose": "care_messages", "method": "reveal_contacts",
                                "fields": ["name", "phone", "email", "birthday"]}  # the refused are not listed
    export = call(customers, "admin", "export_subject", caring[0])
    [batch] = [access for access in export["pii_accesses"] if access["method"] == "reveal_contacts"]
    assert batch == {"recorded_at": recorded["recorded_at"], "actor": recorded["actor"], "customer_id": caring[0],
                     "purpose": "care_messages", "method": "reveal_contacts",
                     "fields": ["name", "phone", "email", "birthday"]}
    assert not any(other in json.dumps(export) for other in caring[1:])  # the others' ids stay out of this copy
    for bad, field in (([], "customer_ids"), (["x"] * 501, "customer_ids"), ([caring[0]] * 2, "customer_ids"),
                       (caring, "purpose")):
        error = remote_error(customers, "service", "reveal_contacts", bad, "gossip" if field == "purpose" else "care_messages")
        assert error.exc_type == "ValidationError" and field in error.value
    assert remote_error(customers, "operator", "reveal_contacts", caring, "care_messages").exc_type == "Forbidden"


def test_due_birthdays_names_consenting_customers_whose_birthday_falls_on_the_day(customers):
    born = {"gregorian": ("1985-03-08", "gregorian"), "leap": ("2000-02-29", "gregorian"),
            "lunar": ("1990-01-20", "lunar")}
    ids = {label: call(customers, "agent", "register", **{**ALICE, "birthday": birthday, "birthday_calendar": calendar,
                                                          "consents": ["care_messages"]})["customer_id"]
           for label, (birthday, calendar) in born.items()}
    call(customers, "agent", "register", **ALICE)  # born on 03-08 too, but no consent to care messages
    due = lambda day, **kw: call(customers, "service", "due_birthdays", day, **kw)["customer_ids"]  # noqa: E731
    assert due("2027-03-08") == [ids["gregorian"]]
    assert due("2027-02-28") == [ids["leap"]] and due("2027-03-01", feb29="mar1") == [ids["leap"]]
    assert due("2027-02-25") == [ids["lunar"]] and due("2026-03-08") == sorted([ids["gregorian"], ids["lunar"]])
    first = call(customers, "service", "due_birthdays", "2026-03-08", limit=1)
    assert call(customers, "service", "due_birthdays", "2026-03-08", after=first["next"])["customer_ids"] \
        == sorted([ids["gregorian"], ids["lunar"]])[1:]


def test_find_filters_pages_and_masks(customers):
    ids = [call(customers, "agent", "register", **{**ALICE, "name": f"张{i}", "phone": f"1390000000{i}",
                                                   "email": f"u{i}@example.com", "tags": ["vip"] if i % 2 else []})
           ["customer_id"] for i in range(5)]
    call(customers, "agent", "register", name="李娜", phone="13700000000")
    wait_for(lambda: caught_up(customers), what="directory caught up")
    by_phone = call(customers, "agent", "find", phone="13900000003")
    assert [item["customer_id"] for item in by_phone["items"]] == [ids[3]]
    assert (by_phone["items"][0]["name"], by_phone["items"][0]["phone"]) == ("张*", "139****0003")
    assert call(customers, "agent", "find", email="u4@example.com")["items"][0]["customer_id"] == ids[4]
    assert call(customers, "agent", "find", name_prefix="张")["total"] == 5
    assert call(customers, "agent", "find", tag="vip")["total"] == 2
    first, second = (call(customers, "agent", "find", name_prefix="张", page=page, page_size=3) for page in (1, 2))
    assert len(first["items"]) == 3 and len(second["items"]) == 2
    assert not {i["customer_id"] for i in first["items"]} & {i["customer_id"] for i in second["items"]}


def test_erase_shreds_pii_everywhere_and_keeps_a_receipt(customers):
    customer_id = call(customers, "agent", "register", **ALICE)["customer_id"]
    error = remote_error(customers, "supervisor", "erase", customer_id, "subject_request")
    assert error.exc_type == "Forbidden"
    erased = call(customers, "admin", "erase", customer_id, "subject_request")
    receipt = erased["receipt"]
    assert receipt["customer_id"] == customer_id and receipt["key_destroyed"] is True
    assert "张伟" not in str(receipt) and "13812345678" not in str(receipt)
    view = call(customers, "admin", "get", customer_id)
    assert view["status"] == "erased" and view["name"] is None and view["phone"] is None
    assert view["erasure"]["receipt_id"] == receipt["receipt_id"]
    wait_for(lambda: caught_up(customers), what="directory caught up")
    assert call(customers, "agent", "find", phone="13812345678")["total"] == 0
    assert call(customers, "auditor", "verify_log")["ok"] is True
    assert remote_error(customers, "admin", "erase", customer_id, "subject_request").exc_type == "Conflict"
    export = call(customers, "admin", "export_subject", customer_id)
    assert export["history"][0]["data"]["name"] is None  # ciphertext can no longer be opened


def test_export_subject_returns_readable_history(customers):
    customer_id = call(customers, "agent", "register", **ALICE)["customer_id"]
    call(customers, "agent", "update", customer_id, {"phone": "13911112222"}, 1)
    export = call(customers, "admin", "export_subject", customer_id)
    assert [h["type"] for h in export["history"]] == ["CustomerRegistered", "CustomerDetailsChanged"]
    assert export["history"][1]["data"]["changes"]["phone"] == "13911112222"
    assert export["customer"]["phone"] == "13911112222"


def test_repeated_command_id_returns_first_result_and_appends_nothing(customers):
    command_id = str(uuid.uuid4())
    first = call(customers, "agent", "register", **ALICE, command_id=command_id)
    head = call(customers, "admin", "health")["log_position"]
    assert call(customers, "agent", "register", **ALICE, command_id=command_id) == first
    assert call(customers, "admin", "health")["log_position"] == head


def test_a_command_id_reused_for_another_payload_or_method_is_a_conflict_that_changes_nothing(customers):
    command_id = str(uuid.uuid4())
    created = call(customers, "agent", "register", **ALICE, command_id=command_id)
    head = call(customers, "admin", "health")["log_position"]
    other_payload = remote_error(customers, "agent", "register", **{**ALICE, "name": "别人"}, command_id=command_id)
    other_method = remote_error(customers, "agent", "give_consent", created["customer_id"], "marketing",
                                command_id=command_id)
    for error in (other_payload, other_method):
        assert error.exc_type == "Conflict" and command_id in error.value
    assert call(customers, "admin", "health")["log_position"] == head
    assert call(customers, "agent", "get", created["customer_id"])["consents"] == ["callbacks"]


def test_a_retried_update_returns_its_first_result(customers):
    customer_id = call(customers, "agent", "register", **ALICE)["customer_id"]
    command_id = str(uuid.uuid4())
    first = call(customers, "agent", "update", customer_id, {"email": "new@example.com"}, 1, command_id=command_id)
    assert first == {"customer_id": customer_id, "version": 2}
    head = call(customers, "admin", "health")["log_position"]
    # The retry decides on version 1, which the stream has left: still the first answer, nothing appended.
    assert call(customers, "agent", "update", customer_id, {"email": "new@example.com"}, 1,
                command_id=command_id) == first
    assert call(customers, "admin", "health")["log_position"] == head


def test_an_erase_with_a_reused_command_id_changes_nothing(customers):
    alice = call(customers, "agent", "register", **ALICE)["customer_id"]
    bob = call(customers, "agent", "register", **{**ALICE, "name": "李娜", "phone": "13900000000"})["customer_id"]
    command_id = str(uuid.uuid4())
    erased = call(customers, "admin", "erase", alice, "subject_request", command_id=command_id)
    assert erased["receipt"]["key_destroyed"] is True
    head = call(customers, "admin", "health")["log_position"]

    assert call(customers, "admin", "erase", alice, "subject_request", command_id=command_id) == erased
    error = remote_error(customers, "admin", "erase", bob, "subject_request", command_id=command_id)
    assert error.exc_type == "Conflict"
    assert call(customers, "admin", "health")["log_position"] == head
    view = call(customers, "agent", "get", bob)
    assert (view["status"], view["name"], view["phone"]) == ("active", "李娜", "13900000000")


def test_bad_input_is_a_validation_error_naming_the_field_and_writes_nothing(customers):
    head = call(customers, "admin", "health")["log_position"]
    error = remote_error(customers, "agent", "register", **{**ALICE, "phone": "call me"})
    assert error.exc_type == "ValidationError" and "phone" in error.value
    error = remote_error(customers, "agent", "register", **ALICE, favourite_colour="blue")
    assert error.exc_type == "ValidationError" and "favourite_colour" in error.value
    error = remote_error(customers, "agent", "register", **{**ALICE, "tags": ["x" * 40] * 2000})
    assert error.exc_type == "ValidationError" and "_payload" in error.value
    assert remote_error(customers, "agent", "get", "no-such-customer").exc_type == "NotFound"
    assert call(customers, "admin", "health")["log_position"] == head


def test_text_a_column_cannot_hold_is_refused_at_the_edge_and_writes_nothing(customers):
    head = call(customers, "admin", "health")["log_position"]
    for bad, field in (({"name": "ß" * 60}, "name"), ({"tags": ["vip", "a\x00b"]}, "tags")):
        error = remote_error(customers, "agent", "register", **{**ALICE, **bad})
        assert error.exc_type == "ValidationError" and field in error.value and "ß" not in error.value
    assert call(customers, "admin", "health")["log_position"] == head
    fits = call(customers, "agent", "register", **{**ALICE, "name": "ß" * 50})["customer_id"]
    wait_for(lambda: caught_up(customers), what="directory caught up")
    assert [item["customer_id"] for item in call(customers, "agent", "find", name_prefix="SS")["items"]] == [fits]
    assert call(customers, "admin", "health")["dead_letters"] == 0


def test_a_replica_that_read_a_customer_opens_nothing_once_another_erased(tmp_path, database_url, amqp_uri):
    config = service_config(tmp_path, amqp_uri, customers=database_url)
    with running(CustomersService, config) as first, running(CustomersService, config) as second:
        customer_id = call(config, "agent", "register", **ALICE)["customer_id"]
        [sealed] = [e["data"]["name"] for e in call(config, "service", "events_since", 0, 10)
                    if e["type"] == "CustomerRegistered"]
        replicas = [event_log(container) for container in (first, second)]

        def opened_by_each():
            return [replica.keys.opening_key(customer_id).open(sealed, f"customer-{customer_id}", "name")
                    for replica in replicas]

        assert opened_by_each() == ["张伟", "张伟"]
        assert {call(config, "agent", "get", customer_id)["name"] for _ in range(4)} == {"张伟"}  # both serve
        call(config, "admin", "erase", customer_id, "subject_request")
        assert opened_by_each() == [None, None]
        assert {call(config, "agent", "get", customer_id)["name"] for _ in range(4)} == {None}
        erased_in = [replica.erasure_scrub.reactions[0].erased_through > 0 for replica in replicas]
        assert sorted(erased_in) == [False, True]  # the erasure reaction ran in one replica only


def test_tokens_are_checked_on_every_method(customers):
    assert remote_error(customers, None, "health").exc_type == "Unauthenticated"
    with rpc_as(customers, None, raw_token=issue_token(Ed25519PrivateKey.generate(), "admin", "mallory",
                                                       ["customers"])) as proxy:
        with pytest.raises(RemoteError) as forged:
            proxy.customers.health()
    assert forged.value.exc_type == "Unauthenticated"
    with rpc_as(customers, None, raw_token=issue_token(ISSUER_KEY, "admin", "old", ["customers"], now=0)) as proxy:
        with pytest.raises(RemoteError) as expired:
            proxy.customers.health()
    assert "expired" in expired.value.value
    assert remote_error(customers, "auditor", "register", **ALICE).exc_type == "Forbidden"


def test_every_rpc_method_declares_its_roles():
    methods = [name for name in dir(CustomersService)
               if hasattr(getattr(CustomersService, name), "nameko_entrypoints")]
    assert {"register", "get", "update", "set_tier", "give_consent", "withdraw_consent", "erase", "find",
            "reveal_contact", "reveal_contacts", "due_birthdays", "export_subject", "events_since", "health",
            "verify_log"} <= set(methods)
    for name in methods:
        assert getattr(getattr(CustomersService, name), "allowed_roles", None), f"{name} declares no roles"


class EventRecorder:
    """A plain nameko service that proves the relay feeds ordinary event handlers."""

    name = "customer_event_recorder"
    received: list = []

    from nameko.events import event_handler

    @event_handler("customers", "CustomerRegistered")
    def on_registered(self, envelope):
        EventRecorder.received.append(envelope)

    @rpc
    def noop(self):
        return None


def test_events_reach_a_plain_nameko_event_handler(customers):
    EventRecorder.received.clear()
    with running(EventRecorder, customers):
        customer_id = call(customers, "agent", "register", **ALICE)["customer_id"]
        wait_for(lambda: any(e["data"]["customer_id"] == customer_id for e in EventRecorder.received),
                 what="CustomerRegistered delivered")
    [envelope] = [e for e in EventRecorder.received if e["data"]["customer_id"] == customer_id]
    assert envelope["service"] == "customers" and envelope["stream_version"] == 1 and len(envelope["hash"]) == 64


def test_framework_free_pika_client_calls_and_subscribes(customers):
    from contracts.client import CrmClient, RemoteError as ClientRemoteError
    from tests.support import token

    with CrmClient(customers["AMQP_URI"], token=token("agent", "pika-user")) as client:
        subscription = client.subscribe("customers", ["CustomerRegistered"])
        created = client.call("customers", "register", "王芳", "13911112222")
        assert client.call("customers", "get", customer_id=created["customer_id"])["phone"] == "13911112222"
        envelope = subscription.get(timeout=20)
        assert envelope["type"] == "CustomerRegistered"
        assert envelope["data"]["customer_id"] == created["customer_id"]
        assert envelope["actor"] == {"id": "pika-user", "role": "agent"}
        with pytest.raises(ClientRemoteError) as refused:
            client.call("customers", "set_tier", created["customer_id"], "partner", "no rights")
        assert refused.value.exc_type == "Forbidden"
