"""The complaints service end to end, beside the real customers service.

Both run against real RabbitMQ (a fresh virtual host per test, so nothing
queued by one test reaches the next) and real databases, one per service:
two SQLite files, or two PostgreSQL databases. Time is moved by calling
``run_sla_check(now)`` with a chosen time, or by a clock injected into the
service; nothing sleeps. Some tests play an attacker who publishes forged
customers events straight to the broker.
"""

from __future__ import annotations

import functools
import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from kombu import Connection
from nameko.testing.services import entrypoint_waiter

from services.complaints.service import ComplaintsService
from services.complaints.sweep import SLA_TIMER_LEASE
from services.customers.service import CustomersService
from shared.clock import Clock
from shared.config import owner_url_key
from shared.consumers import as_envelope
from shared.eventstore.envelope import content_hash, utc_now_iso
from shared.signing import EventSigner
from shared.timers import leased_timer
from tests import support
from tests.support import private_vhost, running, service_config, wait_for

call = functools.partial(support.call, service="complaints")
remote_error = functools.partial(support.remote_error, service="complaints")

ALICE = {"name": "张伟", "phone": "13812345678", "email": "zhangwei@example.com", "tier": "general"}
LEAK = {"channel": "phone", "category": "after_sales", "summary": "洗衣机漏水 张伟 13812345678",
        "description": "新买的洗衣机第一次使用就漏水,地板泡坏了", "urgency": "medium"}


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture
def amqp_uri():
    """A virtual host per test, so events queued for one test never reach another."""
    with private_vhost(f"crm-complaints-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


@pytest.fixture
def config(tmp_path, database_url, request, amqp_uri):
    """One database per service: ``database_url`` for customers and a second of the same kind."""
    if database_url.startswith("sqlite"):
        complaints_url = f"sqlite:///{tmp_path / 'complaints.db'}"
    else:
        complaints_url = request.getfixturevalue("postgres_url_factory")()
    settings = service_config(tmp_path, amqp_uri, customers=database_url, complaints=complaints_url)
    settings["COMPLAINTS"] = {"sla_timer_seconds": 3600}  # these tests drive the sweep themselves
    return settings


@pytest.fixture
def services(config):
    """Both services running; the complaints container, for a test that waits on its event handler."""
    with running(CustomersService, config), running(ComplaintsService, config) as complaints:
        yield complaints


@pytest.fixture
def crm(config, services):
    return config


# -- helpers ---------------------------------------------------------------------------

def register(config, **changes) -> str:
    return call(config, "agent", "register", **{**ALICE, **changes}, service="customers")["customer_id"]


def file(config, customer_id, role="agent", **changes) -> dict:
    return call(config, role, "file", customer_id, **{**LEAK, **changes})


def events(config, complaint_id=None) -> list[dict]:
    found = call(config, "admin", "events_since", 0, 5000)
    return [e for e in found if complaint_id is None or e["stream_id"] == f"complaint-{complaint_id}"]


def listed(config, **filters) -> dict:
    return call(config, "supervisor", "list", **filters)


def listed_as(config, complaint_id, **expected):
    """Wait until the list shows the complaint with ``expected`` values; return its row."""
    def row():
        items = [item for item in listed(config, page_size=200)["items"] if item["complaint_id"] == complaint_id]
        return items and all(items[0][key] == value for key, value in expected.items()) and items[0]
    return wait_for(row, what=f"complaint {complaint_id} listed with {expected}")


def knows_all_customers(config):
    """Wait until the complaints service has applied every event the customers service logged."""
    head = call(config, "admin", "health", service="customers")["log_position"]
    directory = lambda: call(config, "admin", "health")["projections"]["complaints.customers"]  # noqa: E731
    wait_for(lambda: directory()["positions"]["customers"] >= head, what="the customers' events to arrive")


def later(iso_text: str, **delta) -> str:
    return (datetime.fromisoformat(iso_text) + timedelta(**delta)).isoformat()


def now_iso(**delta) -> str:
    return (datetime.now(timezone.utc) + timedelta(**delta)).isoformat()


# -- lifecycle -----------------------------------------------------------------------------

def test_a_whole_lifecycle_from_filing_to_satisfied_close(crm):
    customer_id = register(crm)
    filed = file(crm, customer_id)
    complaint_id = filed["complaint_id"]
    assert filed["version"] == 1 and filed["status"] == "open" and filed["priority"] == "normal"
    assert filed["first_reply_due"] and filed["resolution_due"] and filed["next_reply_due"] is None
    assert call(crm, "supervisor", "classify", complaint_id, "technical_support", "high")["version"] == 2
    assert call(crm, "supervisor", "assign", complaint_id, "agent-li")["status"] == "assigned"
    assert call(crm, "agent", "respond", complaint_id, "您好,我们已安排技术人员")["status"] == "in_progress"
    assert call(crm, "agent", "request_info", complaint_id, "请提供购买日期")["status"] == "waiting_on_customer"
    waiting = call(crm, "agent", "get", complaint_id)
    assert waiting["waiting_on_customer_since"] and waiting["resolution_due"] is None  # the clock is stopped
    assert call(crm, "agent", "customer_replied", complaint_id, "三月二日")["status"] == "in_progress"
    escalated = call(crm, "agent", "escalate", complaint_id, "需要更换整机, 上报主管")
    assert escalated["version"] == 7
    assert call(crm, "agent", "resolve", complaint_id, "已上门更换新机")["status"] == "resolved"
    closed = call(crm, "service", "confirm", complaint_id, True, 5)
    assert closed == {"complaint_id": complaint_id, "version": 10, "status": "closed"}

    view = call(crm, "agent", "get", complaint_id)
    assert (view["status"], view["escalation_level"], view["priority"], view["category"], view["assignee"]) == \
        ("closed", 1, "high", "technical_support", "agent-li")
    assert view["summary"] == LEAK["summary"] and view["description"] == LEAK["description"]
    assert view["resolution"] == "已上门更换新机" and view["score"] == 5 and view["satisfied"] is True
    assert view["allowed_actions"] == [] and view["first_reply_due"] and view["breaches"] == []
    assert [entry["type"] for entry in view["history"]] == [
        "ComplaintFiled", "ComplaintClassified", "ComplaintAssigned", "ComplaintResponded",
        "ComplaintInfoRequested", "ComplaintCustomerReplied", "ComplaintEscalated", "ComplaintResolved",
        "ComplaintConfirmed", "ComplaintClosed"]
    assert view["history"][3]["text"] == "您好,我们已安排技术人员"

    row = listed_as(crm, complaint_id, status="closed")
    assert row["score"] == 5 and row["assignee"] == "agent-li" and row["summary"] == LEAK["summary"]
    stats = call(crm, "supervisor", "stats")
    assert stats["total"] == 1 and stats["by_status"]["closed"] == 1
    assert stats["by_category"]["technical_support"] == 1 and stats["satisfaction"]["average_score"] == 5
    assert stats["resolution_rate_pct"] == 100.0 and stats["sla_compliance_pct"] == 100.0


def test_texts_are_ciphertext_in_the_log(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    call(crm, "agent", "respond", complaint_id, "已收到,马上处理")
    filed, responded = events(crm, complaint_id)
    assert filed["data"]["summary"].startswith("enc:v2:") and filed["data"]["description"].startswith("enc:v2:")
    assert responded["data"]["message"].startswith("enc:v2:")
    assert filed["data"]["priority"] == "normal" and filed["actor"] == {"id": "tester", "role": "agent"}
    assert call(crm, "auditor", "verify_log")["ok"] is True


def test_list_filters_pages_and_puts_the_newest_first(crm):
    first, second = register(crm), register(crm, phone="13900000001")
    ids = [file(crm, first)["complaint_id"], file(crm, second, category="billing")["complaint_id"],
           file(crm, first, urgency="critical")["complaint_id"]]
    call(crm, "supervisor", "assign", ids[0], "agent-wang")
    listed_as(crm, ids[0], assignee="agent-wang")
    wait_for(lambda: listed(crm)["total"] == 3, what="three complaints listed")
    assert [item["complaint_id"] for item in listed(crm)["items"]] == list(reversed(ids))
    assert [item["complaint_id"] for item in listed(crm, customer_id=first)["items"]] == [ids[2], ids[0]]
    assert [item["complaint_id"] for item in listed(crm, category="billing")["items"]] == [ids[1]]
    assert [item["complaint_id"] for item in listed(crm, priority="critical")["items"]] == [ids[2]]
    assert [item["complaint_id"] for item in listed(crm, assignee="agent-wang")["items"]] == [ids[0]]
    assert listed(crm, status="assigned")["total"] == 1 and listed(crm, breached=True)["total"] == 0
    page = listed(crm, page=2, page_size=2)
    assert [item["complaint_id"] for item in page["items"]] == [ids[0]] and page["total"] == 3


# -- customers known from the complaints service's own projection -------------------------

def test_filing_for_an_unknown_or_erased_customer_is_refused(crm):
    head = call(crm, "admin", "health")["log_position"]
    unknown = remote_error(crm, "agent", "file", "no-such-customer", **LEAK)
    assert unknown.exc_type == "NotFound" and "no-such-customer" in unknown.value
    customer_id = register(crm)
    call(crm, "admin", "erase", customer_id, "subject_request", service="customers")
    knows_all_customers(crm)  # until then a filing may still race the erasure (eventual consistency)
    erased = remote_error(crm, "agent", "file", customer_id, **LEAK)
    assert erased.exc_type == "Conflict" and "erased" in erased.value
    assert call(crm, "admin", "health")["log_position"] == head


def test_a_recreated_customers_database_is_refused_until_the_projections_are_rebuilt(config, tmp_path):
    recreated = {**{key: value for key, value in config.items() if key != owner_url_key("customers")},
                 "CRM_CUSTOMERS_DATABASE_URL": f"sqlite:///{tmp_path / 'customers-recreated.db'}"}
    forked = lambda: {name: projection["forked"]  # noqa: E731
                      for name, projection in call(config, "admin", "health")["projections"].items()}
    with running(ComplaintsService, config):
        with running(CustomersService, config):
            for number in range(2):
                register(config, phone=f"1380000000{number}")
            knows_all_customers(config)
        with running(CustomersService, recreated):  # positions 1 and 2 again, other events
            newcomers = [register(recreated, phone=f"1390000000{number}") for number in range(2)]
            refused = wait_for(lambda: forked()["complaints.customers"], what="the replaced log to be refused")
            assert "customers log was replaced" in refused["customers"]
            assert remote_error(config, "agent", "file", newcomers[1], **LEAK).exc_type == "NotFound"

            rebuilt = {report["projection"]: report for report in call(config, "admin", "rebuild_projections")}
            assert rebuilt["complaints.customers"]["repaired"]
            assert not rebuilt["complaints.list"]["same_chain"] and rebuilt["complaints.list"]["repaired"]
            assert forked() == {"complaints.customers": {}, "complaints.list": {}}
            assert file(config, newcomers[1])["version"] == 1
            third = register(recreated, phone="13900000009")  # and the new log is followed from then on
            wait_for(lambda: call(config, "admin", "health")["projections"]["complaints.customers"]
                     ["positions"]["customers"] == 3, what="the next customers event to be applied")
            assert file(config, third)["version"] == 1


def test_a_customer_registered_a_moment_ago_can_be_filed_for_at_once(crm):
    for number in range(3):
        assert file(crm, register(crm, phone=f"1370000000{number}"))["version"] == 1


def test_erasure_drops_the_pii_of_the_customers_complaints(crm):
    customer_id = register(crm)
    complaint_id = file(crm, customer_id)["complaint_id"]
    call(crm, "agent", "respond", complaint_id, "张伟先生您好")
    other = file(crm, register(crm, phone="13911112222"))["complaint_id"]
    listed_as(crm, complaint_id, summary=LEAK["summary"])
    call(crm, "admin", "erase", customer_id, "subject_request", service="customers")
    knows_all_customers(crm)
    listed_as(crm, complaint_id, summary=None)
    view = call(crm, "agent", "get", complaint_id)
    assert view["summary"] is None and view["description"] is None
    assert view["history"][1]["text"] is None and view["status"] == "in_progress"  # the record stays
    assert listed_as(crm, other)["summary"] == LEAK["summary"]  # other customers keep theirs
    error = remote_error(crm, "agent", "respond", complaint_id, "再次联系")
    assert error.exc_type == "Conflict" and "destroyed" in error.value
    assert call(crm, "auditor", "verify_log")["ok"] is True  # the log still verifies


def test_showing_complaint_texts_is_recorded_and_moves_no_version(crm):
    customer_id = register(crm)
    complaint_id = file(crm, customer_id)["complaint_id"]
    call(crm, "agent", "respond", complaint_id, "张伟先生您好")

    def accesses():
        return [(e["stream_id"], e["actor"]["role"], e["data"]) for e in events(crm) if e["type"] == "PiiAccessed"]

    assert call(crm, "agent", "get", complaint_id)["version"] == 2
    assert call(crm, "auditor", "get", complaint_id)["texts_shown"] is False  # nothing shown, nothing recorded
    assert call(crm, "supervisor", "get", complaint_id)["version"] == 2      # a read never moves the complaint
    recorded = {"customer_id": customer_id, "complaint_id": complaint_id, "purpose": "complaint_handling",
                "fields": ["summary", "description", "messages"], "method": "get"}
    assert accesses() == [(f"pii-access-{complaint_id}", "agent", recorded),
                          (f"pii-access-{complaint_id}", "supervisor", recorded)]

    call(crm, "admin", "erase", customer_id, "subject_request", service="customers")
    knows_all_customers(crm)
    assert call(crm, "agent", "get", complaint_id)["description"] is None
    assert len(accesses()) == 2  # the texts are shredded: nothing left to show


def test_rebuilt_projections_equal_the_live_ones_after_an_erasure(crm):
    kept, erased = register(crm), register(crm, phone="13911112222")
    complaint_id = file(crm, kept)["complaint_id"]
    call(crm, "agent", "resolve", complaint_id, "已处理")
    gone = file(crm, erased)["complaint_id"]
    call(crm, "admin", "erase", erased, "subject_request", service="customers")
    knows_all_customers(crm)
    listed_as(crm, gone, summary=None)
    listed_as(crm, complaint_id, status="resolved")
    rebuilt = call(crm, "admin", "rebuild_projections")
    assert {r["projection"] for r in rebuilt} == {"complaints.list", "complaints.customers"}
    assert all(r["equal"] and not r["repaired"] for r in rebuilt), rebuilt
    assert file(crm, kept)["version"] == 1  # still known
    assert remote_error(crm, "agent", "file", erased, **LEAK).exc_type == "Conflict"  # still erased


# -- SLA --------------------------------------------------------------------------------------

def test_sla_warning_then_one_breach_per_target_escalates_once(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    due = call(crm, "agent", "get", complaint_id)["first_reply_due"]
    listed_as(crm, complaint_id)  # the sweep finds open complaints through the list
    warned = call(crm, "admin", "run_sla_check", later(due, minutes=-1))
    assert warned["recorded"] == {"ComplaintSlaWarning": 1}
    for _run in range(2):
        call(crm, "admin", "run_sla_check", later(due, minutes=1))
    sla_events = [e for e in events(crm, complaint_id) if e["type"] != "ComplaintFiled"]
    assert [e["type"] for e in sla_events] == ["ComplaintSlaWarning", "ComplaintSlaBreached", "ComplaintEscalated"]
    breach, escalation = sla_events[1:]
    assert breach["data"]["target"] == "first_reply" and breach["data"]["due"] == breach["data"]["due"]
    assert escalation["data"]["trigger"] == "sla_breach" and "first_reply" in escalation["data"]["reason"]
    view = call(crm, "agent", "get", complaint_id)
    assert view["escalation_level"] == 1 and [b["target"] for b in view["breaches"]] == ["first_reply"]
    listed_as(crm, complaint_id, breached=True, escalation_level=1)
    assert call(crm, "supervisor", "stats")["sla_compliance_pct"] == 0.0
    assert remote_error(crm, "supervisor", "run_sla_check").exc_type == "Forbidden"


def test_a_sweep_loads_only_the_complaints_whose_moment_has_come(crm):
    answered = file(crm, register(crm))["complaint_id"]
    waiting = file(crm, register(crm, phone="13911112222"))
    listed_as(crm, waiting["complaint_id"])
    now = now_iso()
    assert call(crm, "admin", "run_sla_check", now)["checked"] == 2  # never looked at yet
    assert call(crm, "admin", "run_sla_check", now)["checked"] == 0  # neither is due for anything
    call(crm, "agent", "respond", answered, "您好,已收到")
    listed_as(crm, answered, version=2)
    assert call(crm, "admin", "run_sla_check", now)["checked"] == 1  # it changed since
    overdue = call(crm, "admin", "run_sla_check", later(waiting["first_reply_due"], minutes=1))
    assert (overdue["checked"], overdue["recorded"]) == (1, {"ComplaintSlaBreached": 1, "ComplaintEscalated": 1})


def test_an_unconfirmed_resolution_is_reminded_then_closes_itself(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    call(crm, "agent", "resolve", complaint_id, "已退款")
    listed_as(crm, complaint_id, status="resolved")  # the sweep finds open complaints through the list
    assert call(crm, "admin", "run_sla_check", now_iso(days=1))["recorded"] == {}
    assert call(crm, "admin", "run_sla_check", now_iso(days=2, hours=1))["recorded"] == \
        {"ComplaintConfirmationReminded": 1}
    assert call(crm, "admin", "run_sla_check", now_iso(days=2, hours=2))["recorded"] == {}
    assert call(crm, "admin", "run_sla_check", now_iso(days=3, hours=2))["recorded"] == {"ComplaintClosed": 1}
    view = call(crm, "agent", "get", complaint_id)
    assert view["status"] == "closed" and "not confirmed within 3 days" in view["close_reason"]
    listed_as(crm, complaint_id, status="closed")


# -- reopen and closed is final ---------------------------------------------------------------

def test_reopen_score_once_and_a_closed_complaint_links_to_a_new_one(crm):
    customer_id = register(crm)
    complaint_id = file(crm, customer_id)["complaint_id"]
    call(crm, "agent", "resolve", complaint_id, "已更换零件")
    assert call(crm, "agent", "confirm", complaint_id, False, 2)["status"] == "reopened"
    call(crm, "agent", "resolve", complaint_id, "已整机更换")
    again = remote_error(crm, "agent", "confirm", complaint_id, True, 4)
    assert again.exc_type == "Conflict" and "asked at its first confirmation" in again.value
    assert call(crm, "agent", "reopen", complaint_id, "客户来电说仍有噪音")["status"] == "reopened"
    call(crm, "agent", "resolve", complaint_id, "已调整减震")
    assert call(crm, "agent", "confirm", complaint_id, satisfied=True)["status"] == "closed"
    final = remote_error(crm, "agent", "reopen", complaint_id, "又坏了")
    assert final.exc_type == "Conflict" and f"related_complaint_id={complaint_id}" in final.value
    illegal = remote_error(crm, "agent", "resolve", complaint_id, "again")
    assert illegal.exc_type == "Conflict" and "closed" in illegal.value
    linked = file(crm, customer_id, related_complaint_id=complaint_id)
    assert call(crm, "agent", "get", linked["complaint_id"])["related_complaint_id"] == complaint_id
    stranger = register(crm, phone="13700001111")
    wrong = remote_error(crm, "agent", "file", stranger, **LEAK, related_complaint_id=complaint_id)
    assert wrong.exc_type == "ValidationError" and "related_complaint_id" in wrong.value
    view = call(crm, "agent", "get", complaint_id)
    assert view["reopen_count"] == 2 and view["score"] == 2
    listed_as(crm, complaint_id, status="closed", reopen_count=2)
    assert call(crm, "supervisor", "stats")["reopen_rate_pct"] == 100.0


def test_confirming_an_open_complaint_names_the_state_and_the_allowed_actions(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    error = remote_error(crm, "agent", "confirm", complaint_id, True, 5)
    assert error.exc_type == "Conflict" and "it is open" in error.value and "resolve" in error.value


# -- concurrency and repeats -------------------------------------------------------------------

def test_stale_expected_version_conflicts_and_a_repeated_command_id_appends_nothing(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    call(crm, "supervisor", "assign", complaint_id, "agent-li", expected_version=1)
    stale = remote_error(crm, "supervisor", "assign", complaint_id, "agent-zhao", expected_version=1)
    assert stale.exc_type == "Conflict" and "version 2" in stale.value
    command_id = str(uuid.uuid4())
    first = call(crm, "agent", "respond", complaint_id, "您好", command_id=command_id)
    head = call(crm, "admin", "health")["log_position"]
    assert call(crm, "agent", "respond", complaint_id, "您好", command_id=command_id) == first
    assert call(crm, "admin", "health")["log_position"] == head
    filed_id = str(uuid.uuid4())
    customer_id = register(crm, phone="13600000000")
    assert file(crm, customer_id, command_id=filed_id) == file(crm, customer_id, command_id=filed_id)


# -- bad input and roles -----------------------------------------------------------------------

BAD_FILINGS = [
    ({"channel": "fax"}, "channel"),
    ({"urgency": "urgent"}, "urgency"),
    ({"category": "refund"}, "category"),
    ({"summary": ""}, "summary"),
    ({"summary": "x" * 201}, "summary"),
    ({"description": None}, "description"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
]


def test_bad_filing_input_is_a_validation_error_naming_the_field_and_writes_nothing(crm):
    customer_id = register(crm)
    head = call(crm, "admin", "health")["log_position"]
    for changes, field in BAD_FILINGS:
        error = remote_error(crm, "agent", "file", customer_id, **{**LEAK, **changes})
        assert error.exc_type == "ValidationError" and field in error.value, (changes, error.value)
    missing = remote_error(crm, "agent", "file", customer_id, channel="phone")
    assert missing.exc_type == "ValidationError" and "summary" in missing.value and "urgency" in missing.value
    assert call(crm, "admin", "health")["log_position"] == head


def test_bad_command_input_is_refused_field_by_field(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    call(crm, "agent", "resolve", complaint_id, "已处理")
    head = call(crm, "admin", "health")["log_position"]
    for method, args, kwargs, field in [
        ("confirm", (complaint_id, True, 6), {}, "score"),
        ("confirm", (complaint_id, "maybe"), {}, "satisfied"),
        ("reopen", (complaint_id,), {}, "reason"),
        ("respond", ("bad id!", "hi"), {}, "complaint_id"),
        ("list", (), {"status": "lost"}, "status"),
        ("stats", (), {"since": "yesterday"}, "since"),
        ("assign", (complaint_id, "a"), {"expected_version": "2"}, "expected_version"),
    ]:
        role = "supervisor" if method == "assign" else "agent"
        error = remote_error(crm, role, method, *args, **kwargs)
        assert error.exc_type == "ValidationError" and field in error.value, (method, error.value)
    assert remote_error(crm, "agent", "get", "no-such-complaint").exc_type == "NotFound"
    assert call(crm, "admin", "health")["log_position"] == head


def test_roles_auditors_read_without_texts_and_agents_do_not_assign(crm):
    complaint_id = file(crm, register(crm))["complaint_id"]
    for method, args in [("file", (register(crm, phone="13500000000"),)), ("respond", (complaint_id, "hi")),
                         ("escalate", (complaint_id, "why")), ("resolve", (complaint_id, "done"))]:
        kwargs = LEAK if method == "file" else {}
        assert remote_error(crm, "auditor", method, *args, **kwargs).exc_type == "Forbidden"
    assert remote_error(crm, "operator", "get", complaint_id).exc_type == "Forbidden"
    for method, args in [("assign", (complaint_id, "agent-li")), ("classify", (complaint_id, "billing", "high"))]:
        assert remote_error(crm, "agent", method, *args).exc_type == "Forbidden"
    view = call(crm, "auditor", "get", complaint_id)
    assert view["status"] == "open" and view["summary"] is None and view["texts_shown"] is False
    assert listed_as(crm, complaint_id)["summary"] == LEAK["summary"]
    assert call(crm, "auditor", "list")["items"][0]["summary"] is None
    assert call(crm, "auditor", "stats")["total"] == 1
    assert remote_error(crm, None, "list").exc_type == "Unauthenticated"


def test_every_rpc_method_declares_its_roles():
    methods = [name for name in dir(ComplaintsService)
               if hasattr(getattr(ComplaintsService, name), "nameko_entrypoints")]
    rpc_methods = {"file", "classify", "assign", "respond", "request_info", "customer_replied", "escalate",
                   "resolve", "confirm", "reopen", "get", "list", "stats", "run_sla_check", "events_since",
                   "health", "verify_log"}
    assert rpc_methods <= set(methods)
    for name in rpc_methods:
        assert getattr(getattr(ComplaintsService, name), "allowed_roles", None), f"{name} declares no roles"


# -- the timer: one replica acts, with an injected clock -----------------------------------------

# -- forged events: an attacker on the broker ------------------------------------------------
#
# The attacker can publish to customers.events but holds no customers signing
# key. It sends a CustomerErased for a real customer that continues the
# customers' hash chain exactly: the next position, the head's hash as
# prev_hash, and a correctly recomputed hash.

def customers_head(config) -> dict:
    """The last event of the customers' log, as ``events_since`` serves it."""
    head = call(config, "admin", "health", service="customers")["log_position"]
    return call(config, "admin", "events_since", head - 1, 1, service="customers")[0]


def directory(config) -> dict:
    """What ``health()`` says of the complaints service's projection of the customers' events."""
    return call(config, "admin", "health")["projections"]["complaints.customers"]


def forged_erasure(head: dict, customer_id: str, version: int, signer: EventSigner | None) -> dict:
    """A ``CustomerErased`` that continues the chain after ``head``, hash recomputed, signed by ``signer``."""
    now = utc_now_iso()
    envelope = dataclasses.replace(
        as_envelope(head), event_id=str(uuid.uuid4()), type="CustomerErased", stream_id=f"customer-{customer_id}",
        stream_version=version, position=head["position"] + 1, occurred_at=now, recorded_at=now,
        actor={"id": "mallory", "role": "admin"}, prev_hash=head["hash"],
        data={"customer_id": customer_id, "receipt_id": str(uuid.uuid4()), "reason": "forged", "erased_at": now})
    body = {**envelope.to_dict(), "hash": content_hash(envelope)}
    if signer is None:
        del body["signature"]
    else:
        body["signature"] = signer.sign(body["hash"])
    return body


def delivered(complaints, amqp_uri: str, body: dict) -> None:
    """Publish ``body`` straight to the customers' exchange; return once the complaints handler is done with it."""
    def is_it(worker_ctx, _result, _exc_info) -> bool:
        return worker_ctx.args[0].get("event_id") == body["event_id"]

    with entrypoint_waiter(complaints, "on_upstream_event", timeout=30, callback=is_it):
        with Connection(amqp_uri) as connection:
            connection.Producer(serializer="json").publish(body, exchange="customers.events",
                                                           routing_key=body["type"], retry=True)


@pytest.mark.parametrize("forger", [None, EventSigner.generate("customers")],
                         ids=["unsigned", "signed-with-another-key"])
def test_a_forged_erasure_is_refused_and_the_next_genuine_event_still_applies(crm, services, amqp_uri, forger):
    customer_id = register(crm)
    complaint_id = file(crm, customer_id)["complaint_id"]
    version = call(crm, "agent", "get", customer_id, service="customers")["version"]  # the read is logged too
    knows_all_customers(crm)
    head = customers_head(crm)

    forged = forged_erasure(head, customer_id, version + 1, forger)
    delivered(services, amqp_uri, forged)

    view = directory(crm)
    refused = view["refused"]["customers"]
    assert (refused["count"], refused["last_event_id"]) == (1, forged["event_id"])
    if forger:
        assert refused["last_reason"] == "bad signature"
    else:  # not even an envelope: it must carry a signature
        assert refused["last_reason"].startswith("malformed envelope") and "signature" in refused["last_reason"]
    assert view["positions"]["customers"] == head["position"] and view["forked"] == {}
    assert call(crm, "agent", "get", complaint_id)["summary"] == LEAK["summary"]  # its key was not destroyed
    assert file(crm, customer_id)["status"] == "open"  # the customer is still known

    call(crm, "supervisor", "set_tier", customer_id, "partner", reason="a long-standing customer",
         service="customers")  # the genuine event at the position the forgery claimed
    knows_all_customers(crm)
    assert directory(crm)["positions"]["customers"] == head["position"] + 1
    assert directory(crm)["refused"]["customers"]["count"] == 1


def test_a_genuine_customers_event_published_again_is_a_duplicate(crm, services, amqp_uri):
    customer_id = register(crm)
    knows_all_customers(crm)
    head = customers_head(crm)

    delivered(services, amqp_uri, head)

    view = directory(crm)
    assert view["positions"]["customers"] == head["position"]
    assert (view["refused"], view["forked"], view["stalled"]) == ({}, {}, {})
    assert file(crm, customer_id)["status"] == "open"


CLOCK: dict[str, datetime | None] = {"now": None}
SWEEPS: list[int] = []  # per sweep the timer ran, the id of the replica's rules provider


def moved_clock() -> datetime:
    return CLOCK["now"] or datetime.now(timezone.utc)


class ClockedComplaints(ComplaintsService):
    """The real service with a clock the test moves and a record of which replica swept."""

    clock = Clock(now=moved_clock)

    @leased_timer(SLA_TIMER_LEASE, interval=0.1)
    def sla_tick(self):
        SWEEPS.append(id(self.sla))
        super().sla_tick()


def test_two_replicas_timer_acts_once_and_breaches_once(config):
    CLOCK["now"], SWEEPS[:] = None, []
    config = {**config, "COMPLAINTS": {"sla_timer_seconds": 0.1}}
    with running(CustomersService, config), running(ClockedComplaints, config), \
            running(ClockedComplaints, config):
        complaint_id = file(config, register(config))["complaint_id"]
        due = call(config, "agent", "get", complaint_id)["first_reply_due"]
        CLOCK["now"] = datetime.fromisoformat(due) + timedelta(minutes=1)

        def breached():
            return [e for e in events(config, complaint_id) if e["type"] == "ComplaintSlaBreached"]

        wait_for(breached, timeout=20, what="a breach")
        count = len(SWEEPS)
        wait_for(lambda: len(SWEEPS) > count + 10, what="more sweeps after the breach")
        recorded = [e for e in events(config, complaint_id) if e["type"] != "ComplaintFiled"]
        CLOCK["now"] = None
    assert [e["type"] for e in recorded] == ["ComplaintSlaBreached", "ComplaintEscalated"]
    assert {e["actor"]["id"] for e in recorded} == {"sla-timer"}
    assert len(set(SWEEPS)) == 1  # both replicas ticked every 0.1 s; only the lease holder swept

