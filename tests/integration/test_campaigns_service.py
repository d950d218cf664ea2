"""The campaigns service end to end, beside the real customers service.

Both run against real RabbitMQ (a virtual host per test) and real
databases, SQLite and PostgreSQL. The campaigns service's clock is pinned
to a moment inside the send window of the day under test, so a Spring
Festival years ahead can be sent today; nothing sleeps. Messages go to
the file sink under the test's data dir, to a real SMTP server (aiosmtpd)
or to a real HTTP server, and the tests read them there.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.exceptions import RemoteError

from services.campaigns.service import CampaignsService
from services.customers.service import CustomersService
from shared.clock import Clock
from tests.forged_tokens import claims, signed
from tests import support
from tests.support import private_vhost, rpc_as, running, service_config, wait_for

call = functools.partial(support.call, service="campaigns")
remote_error = functools.partial(support.remote_error, service="campaigns")

SPRING_FESTIVAL_2027 = "2027-02-06"
TEN_IN_SHANGHAI = datetime(2027, 2, 6, 2, 0, tzinfo=timezone.utc)
BIRTHDAY_DAY = "2027-02-25"  # a lunar 1990-01-20 and a gregorian 02-25 birthday both fall here
BIRTHDAY_MOMENT = datetime(2027, 2, 25, 3, 0, tzinfo=timezone.utc)
PINNED = {"now": TEN_IN_SHANGHAI}

GREETING = [{"tier": "*", "locale": "*", "body": "{{ name }}，{{ holiday }}快乐！"},
            {"tier": "partner", "locale": "zh-CN", "body": "尊敬的伙伴{{ name }}：{{ holiday }}快乐！退订 {{ opt_out_url }}"}]
SPRING = {"name": "2027 春节祝福", "kind": "holiday", "holiday": "spring_festival", "templates": GREETING}


class PinnedCampaigns(CampaignsService):
    """The campaigns service on a clock the test sets."""

    clock = Clock(now=lambda: PINNED["now"])


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture
def amqp_uri():
    with private_vhost(f"crm-campaigns-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


def campaigns_config(tmp_path, amqp_uri, customers_url, campaigns_url) -> dict:
    settings = service_config(tmp_path, amqp_uri, customers=customers_url, campaigns=campaigns_url)
    settings["CAMPAIGNS"] = {"birthday_timer_seconds": 3600, "retry": {"attempts": 2, "backoff_seconds": 0.01},
                             "batch_size": 50}
    PINNED["now"] = TEN_IN_SHANGHAI
    return settings


@pytest.fixture
def config(tmp_path, database_url, request, amqp_uri):
    """Both services on SQLite, or both on PostgreSQL (one database each)."""
    if database_url.startswith("sqlite"):
        campaigns_url = f"sqlite:///{tmp_path / 'campaigns.db'}"
    else:
        campaigns_url = request.getfixturevalue("postgres_url_factory")()
    return campaigns_config(tmp_path, amqp_uri, database_url, campaigns_url)


@pytest.fixture
def sqlite_config(tmp_path, amqp_uri):
    """For what the storage backend does not change (channels, input checks): SQLite only."""
    return campaigns_config(tmp_path, amqp_uri, f"sqlite:///{tmp_path / 'customers.db'}",
                            f"sqlite:///{tmp_path / 'campaigns.db'}")


@pytest.fixture
def crm(config):
    with running(CustomersService, config), running(PinnedCampaigns, config):
        yield config


@pytest.fixture
def sqlite_crm(sqlite_config):
    with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
        yield sqlite_config


# -- helpers ---------------------------------------------------------------------------------

def register(config, name, consents=("care_messages",), **changes) -> str:
    person = {"name": name, "phone": "13812345678", "email": f"{uuid.uuid4().hex[:8]}@example.com",
              "tier": "general", "consents": list(consents), **changes}
    return call(config, "agent", "register", service="customers", **person)["customer_id"]


def knows_all_customers(config):
    head = call(config, "admin", "health", service="customers")["log_position"]
    directory = lambda: call(config, "admin", "health")["projections"]["campaigns.customers"]  # noqa: E731
    wait_for(lambda: directory()["positions"].get("customers", 0) >= head, what="the customers' events to arrive")


def finished(config, run_id) -> dict:
    return wait_for(lambda: (status := call(config, "operator", "run_status", run_id))["status"] == "completed"
                    and status, timeout=30, what=f"run {run_id} to complete")


def sink(config) -> list[dict]:
    path = f"{config['CRM_DATA_DIR']}/campaigns/care-messages.jsonl"
    try:
        with open(path, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        return []


def campaign_events(config, *types) -> list[dict]:
    return [e for e in call(config, "admin", "events_since", 0, 5000) if e["type"] in types]


def logged(config, *types) -> list[dict]:
    """The messages the run events of these types list, each with its event's ``type`` and ``customer_ids``."""
    return [{**message, "type": e["type"], "customer_ids": e["data"]["customer_ids"]}
            for e in campaign_events(config, *types) for message in e["data"]["messages"]]


def create(config, **changes) -> str:
    return call(config, "operator", "create", **{**SPRING, **changes})["campaign_id"]


# -- holiday campaigns -------------------------------------------------------------------------

def test_a_spring_festival_campaign_greets_once_and_honours_consent_and_erasure(crm):
    partner = register(crm, "张伟", tier="partner")
    general = register(crm, "李娜", locale="en-US", timezone="Asia/Shanghai")
    never = register(crm, "王芳", consents=())
    withdrawn = register(crm, "刘洋")
    erased = register(crm, "陈静")
    call(crm, "agent", "withdraw_consent", withdrawn, "care_messages", service="customers")
    call(crm, "admin", "erase", erased, "subject_request", service="customers")
    knows_all_customers(crm)
    campaign_id = create(crm)
    head = call(crm, "admin", "health")["log_position"]

    preview = call(crm, "operator", "preview", campaign_id, SPRING_FESTIVAL_2027)
    assert preview["would_send"] == 2 and preview["occurrence"] == "spring_festival:2027"
    assert preview["skipped"] == {"no_consent": 2, "erased": 1}
    texts = {r["customer_id"]: r["text"] for r in preview["recipients"]}
    assert texts[partner].startswith("尊敬的伙伴张*：春节快乐！") and "张伟" not in texts[partner]  # masked
    assert call(crm, "admin", "health")["log_position"] == head and not sink(crm)  # the preview wrote nothing

    first = finished(crm, call(crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
    assert (first["queued"], first["sent"], first["failed"]) == (2, 2, 0)
    assert first["skipped"] == {"no_consent": 2, "erased": 1}
    delivered = {line["customer_id"]: line for line in sink(crm)}
    assert set(delivered) == {partner, general}
    assert delivered[partner]["text"].startswith("尊敬的伙伴张伟：春节快乐！退订 https://")
    assert delivered[general]["text"].startswith("李娜，Spring Festival快乐！\nTo stop these messages: https://")
    assert delivered[partner]["occurrence"] == "spring_festival:2027"

    again = finished(crm, call(crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
    assert (again["sent"], again["skipped"].get("already_sent")) == (0, 2)
    assert len(sink(crm)) == 2
    skipped = {(m["customer_id"], m["reason"]) for m in logged(crm, "CareMessageSkipped")}
    assert skipped == {(never, "no_consent"), (withdrawn, "no_consent"), (erased, "erased")}
    [sent] = campaign_events(crm, "CareMessageSent")  # the batch's one outcome event
    assert sorted((m["message_key"], m["customer_id"], m["occurrence"]) for m in sent["data"]["messages"]) == \
        sorted((line["message_key"], line["customer_id"], line["occurrence"]) for line in sink(crm))
    assert sent["data"]["customer_ids"] == [m["customer_id"] for m in sent["data"]["messages"]]
    assert sent["data"]["channel"] == "file" and {m["attempts"] for m in sent["data"]["messages"]} == {1}
    assert all("张伟" not in json.dumps(e) and "李娜" not in json.dumps(e) for e in campaign_events(
        crm, "CareMessageQueued", "CareMessageSent"))  # no personal data in the log
    knows_all_customers(crm)
    rebuilt = call(crm, "admin", "rebuild_projections")
    assert {r["projection"] for r in rebuilt} == {"campaigns.customers", "campaigns.list"}
    assert all(r["equal"] and not r["repaired"] for r in rebuilt), json.dumps(rebuilt)


def test_outside_the_window_nothing_is_sent_until_the_window_opens(sqlite_crm):
    customer = register(sqlite_crm, "张伟", timezone="America/New_York")  # 21:00 the evening before, there
    knows_all_customers(sqlite_crm)
    campaign_id = create(sqlite_crm)
    early = finished(sqlite_crm, call(sqlite_crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
    assert early["sent"] == 0 and early["skipped"] == {"outside_window": 1}
    PINNED["now"] = datetime(2027, 2, 6, 15, 0, tzinfo=timezone.utc)  # 10:00 in New York
    later = finished(sqlite_crm, call(sqlite_crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
    assert later["sent"] == 1 and [line["customer_id"] for line in sink(sqlite_crm)] == [customer]


def test_triggers_at_the_same_moment_send_each_message_once(crm):
    customers = [register(crm, f"客户{i}") for i in range(120)]
    knows_all_customers(crm)
    campaign_id = create(crm)
    answers = []

    def trigger():
        answers.append(call(crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027))

    threads = [threading.Thread(target=trigger) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = {answer["run_id"] for answer in answers}
    for run_id in runs:
        finished(crm, run_id)
    delivered = [line["customer_id"] for line in sink(crm)]
    assert sorted(delivered) == sorted(customers)  # each once, whichever run sent it
    keys = [m["message_key"] for m in logged(crm, "CareMessageSent")]
    assert len(keys) == len(set(keys)) == 120
    assert len(campaign_events(crm, "CareMessageSent")) <= 9  # 3 runs of at most 3 batches: an event per batch


def test_the_frequency_cap_holds_across_campaigns(sqlite_config):
    sqlite_config["CAMPAIGNS"]["frequency_cap"] = {"messages": 1, "days": 7}
    with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
        customer = register(sqlite_config, "张伟")
        knows_all_customers(sqlite_config)
        first, second = create(sqlite_config), create(sqlite_config, name="另一个春节祝福")
        assert finished(sqlite_config, call(sqlite_config, "operator", "trigger", first, SPRING_FESTIVAL_2027)["run_id"])["sent"] == 1
        capped = finished(sqlite_config, call(sqlite_config, "operator", "trigger", second, SPRING_FESTIVAL_2027)["run_id"])
        assert capped["sent"] == 0 and capped["skipped"] == {"frequency_cap": 1}
        assert [line["customer_id"] for line in sink(sqlite_config)] == [customer]


# -- birthdays ------------------------------------------------------------------------------------

def test_a_birthday_campaign_greets_gregorian_and_lunar_birthdays_on_their_day(crm):
    PINNED["now"] = BIRTHDAY_MOMENT
    gregorian = register(crm, "张伟", birthday="1985-02-25")
    lunar = register(crm, "李娜", birthday="1990-01-20", birthday_calendar="lunar")
    register(crm, "王芳", birthday="1985-02-26")
    register(crm, "刘洋", birthday="1985-02-25", consents=())
    knows_all_customers(crm)
    campaign_id = call(crm, "operator", "create", name="生日问候", kind="birthday",
                       templates=[{"body": "{{ name }}，生日快乐！({{ date }})"}])["campaign_id"]
    preview = call(crm, "operator", "preview", campaign_id, BIRTHDAY_DAY)
    assert preview["would_send"] == 2 and preview["occurrence"] == "birthday:2027-02-25"
    run = finished(crm, call(crm, "operator", "trigger", campaign_id, BIRTHDAY_DAY)["run_id"])
    assert run["sent"] == 2
    assert sorted(line["customer_id"] for line in sink(crm)) == sorted([gregorian, lunar])
    assert {line["occurrence"] for line in sink(crm)} == {"birthday:2027-02-25"}
    assert finished(crm, call(crm, "operator", "trigger", campaign_id, BIRTHDAY_DAY)["run_id"])["sent"] == 0


def test_the_birthday_timer_greets_due_birthdays_by_itself(sqlite_config):
    sqlite_config["CAMPAIGNS"]["birthday_timer_seconds"] = 0.2
    PINNED["now"] = BIRTHDAY_MOMENT
    with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
        customer = register(sqlite_config, "张伟", birthday="1985-02-25")
        register(sqlite_config, "王芳", birthday="1985-02-26")
        knows_all_customers(sqlite_config)
        call(sqlite_config, "operator", "create", name="生日问候", kind="birthday",
             templates=[{"body": "{{ name }}，生日快乐！"}])
        wait_for(lambda: sink(sqlite_config), what="the timer's run to greet the customer")
        assert [line["customer_id"] for line in sink(sqlite_config)] == [customer]


# -- kill and resume ---------------------------------------------------------------------------------

class SlowReceiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes its time, so a run can be killed part-way."""

    received: list = []
    delay = threading.Event()

    def do_POST(self):  # noqa: N802 - the http.server name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        SlowReceiver.received.append((self.headers["Idempotency-Key"], body))
        self.delay.wait(0.02)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture
def webhook():
    SlowReceiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/care"
    server.shutdown()


def test_a_run_killed_part_way_is_resumed_and_sends_nothing_twice(config):
    """The file sink is read back on resume: every message arrives once, none is lost."""
    killed_and_resumed(config, "file", None)


def test_a_webhook_run_killed_part_way_records_the_cut_off_messages_failed(sqlite_config, webhook):
    """A webhook cannot be asked what it got: what may have reached it is not sent again."""
    killed_and_resumed(sqlite_config, "webhook", webhook)


def killed_and_resumed(config, channel, webhook):
    config["CAMPAIGNS"].update(batch_size=1 if channel == "file" else 5,  # slow enough to be cut part-way
                               webhook={"url": webhook or "http://127.0.0.1:9/unused"},
                               birthday_timer_seconds=0.2)  # the timer resumes unfinished runs
    with running(CustomersService, config):
        with running(PinnedCampaigns, config) as campaigns:
            customers = [register(config, f"客户{i}") for i in range(60)]
            knows_all_customers(config)
            campaign_id = create(config, channel=channel)
            run_id = call(config, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"]
            received = (lambda: sink(config)) if channel == "file" else (lambda: SlowReceiver.received)
            wait_for(lambda: len(received()) >= 5, what="the run to be part-way")
            campaigns.kill()
        cut_at = len(received())
        assert cut_at < 60, "the run finished before it could be killed"
        with running(PinnedCampaigns, config):
            resumed = finished(config, run_id)
            keys = [line["message_key"] for line in sink(config)] if channel == "file" else \
                [key for key, _body in SlowReceiver.received]
            assert len(keys) == len(set(keys)), "a message was sent twice"
            sent = {m["customer_id"] for m in logged(config, "CareMessageSent")}
            failed = {m["customer_id"]: m["reason"] for m in logged(config, "CareMessageFailed")}
            outcomes = [m["message_key"] for m in logged(config, "CareMessageSent", "CareMessageFailed")]
            assert len(outcomes) == len(set(outcomes)) == 60, "a message was recorded twice"
            assert (resumed["sent"], resumed["failed"]) == (len(sent), len(failed))  # counts add up the lists
            assert resumed["queued"] == (60 if channel == "file" else len(logged(config, "CareMessageQueued")))
            assert sent | set(failed) == set(customers) and not sent & set(failed)
            assert {key.split("|")[1] for key in keys} >= sent
            if channel == "file":
                assert not failed and resumed["sent"] == 60  # the sink is read back: nothing lost, nothing twice
            else:
                assert all(reason.startswith("interrupted") for reason in failed.values())  # at most once
            again = finished(config, call(config, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
            assert again["sent"] == 0


# -- channels ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


def test_smtp_and_webhook_channels_deliver(sqlite_config, webhook):
    mailbox = Mailbox()
    port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        sqlite_config["CAMPAIGNS"].update(smtp={"host": "127.0.0.1", "port": port, "sender": "care@example.com"},
                                   webhook={"url": webhook}, frequency_cap={"messages": 5, "days": 7})
        with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
            customer = register(sqlite_config, "张伟", email="zhangwei@example.com")
            knows_all_customers(sqlite_config)
            by_mail = create(sqlite_config, channel="smtp")
            assert finished(sqlite_config, call(sqlite_config, "operator", "trigger", by_mail, SPRING_FESTIVAL_2027)["run_id"])["sent"] == 1
            [(recipients, content)] = mailbox.messages
            assert recipients == ["zhangwei@example.com"] and "Message-ID" in content
            by_hook = create(sqlite_config, channel="webhook")
            assert finished(sqlite_config, call(sqlite_config, "operator", "trigger", by_hook, SPRING_FESTIVAL_2027)["run_id"])["sent"] == 1
            [(key, body)] = SlowReceiver.received
            assert key == f"{by_hook}|{customer}|spring_festival:2027" and body["text"].startswith("张伟，春节快乐")
    finally:
        smtp.stop()


def test_a_webhook_that_never_answers_is_retried_then_recorded_failed(sqlite_config):
    sqlite_config["CAMPAIGNS"].update(webhook={"url": "http://127.0.0.1:9/care", "timeout_seconds": 1})
    with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
        register(sqlite_config, "张伟")
        knows_all_customers(sqlite_config)
        campaign_id = create(sqlite_config, channel="webhook")
        run = finished(sqlite_config, call(sqlite_config, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"])
        assert (run["sent"], run["failed"]) == (0, 1)
        [failed] = logged(sqlite_config, "CareMessageFailed")
        assert failed["attempts"] == 2 and "refused" in failed["reason"].lower()


# -- refusals ------------------------------------------------------------------------------------------

def test_bad_input_wrong_roles_and_forged_tokens_are_refused(sqlite_crm):
    cases = [
        ({"templates": [{"body": "{{ name.__class__.__mro__ }}"}]}, "templates"),
        ({"templates": [{"body": "{{ secret }}"}]}, "templates"),
        ({"templates": [{"body": "{% if %}"}]}, "templates"),
        ({"holiday": "halloween"}, "holiday"),
        ({"holiday": None}, "holiday"),
        ({"send_window": {"start": "20:00", "end": "09:00"}}, "send_window"),
        ({"channel": "pigeon"}, "channel"),
    ]
    for changes, field in cases:
        error = remote_error(sqlite_crm, "operator", "create", **{**SPRING, **changes})
        assert error.exc_type == "ValidationError" and field in error.value, (changes, error.value)
    campaign_id = create(sqlite_crm)
    wrong_day = remote_error(sqlite_crm, "operator", "trigger", campaign_id, "2027-02-07")
    assert wrong_day.exc_type == "ValidationError" and "on_date" in wrong_day.value and "2027-02-06" in wrong_day.value
    assert remote_error(sqlite_crm, "agent", "trigger", campaign_id, SPRING_FESTIVAL_2027).exc_type == "Forbidden"
    assert remote_error(sqlite_crm, "auditor", "create", **SPRING).exc_type == "Forbidden"
    assert call(sqlite_crm, "agent", "get", campaign_id)["status"] == "active"  # agents read
    with rpc_as(sqlite_crm, None, raw_token=signed(Ed25519PrivateKey.generate(), claims("campaigns"))) as proxy:
        with pytest.raises(RemoteError) as forged:
            proxy.campaigns.create(**SPRING)
    assert forged.value.exc_type == "Unauthenticated"


def test_pause_stops_triggers_and_archive_is_final(sqlite_crm):
    register(sqlite_crm, "张伟")
    knows_all_customers(sqlite_crm)
    campaign_id = create(sqlite_crm)
    assert call(sqlite_crm, "operator", "pause", campaign_id)["status"] == "paused"
    assert remote_error(sqlite_crm, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027).exc_type == "Conflict"
    assert call(sqlite_crm, "operator", "resume", campaign_id)["status"] == "active"
    assert call(sqlite_crm, "operator", "archive", campaign_id)["status"] == "archived"
    assert remote_error(sqlite_crm, "operator", "resume", campaign_id).exc_type == "Conflict"
    listed = wait_for(lambda: (items := call(sqlite_crm, "supervisor", "list", status="archived")["items"]) and items)
    assert [item["campaign_id"] for item in listed] == [campaign_id]


def test_a_pause_stops_a_run_between_batches_and_resume_carries_it_on(sqlite_config, webhook):
    sqlite_config["CAMPAIGNS"].update(batch_size=1, webhook={"url": webhook})
    with running(CustomersService, sqlite_config), running(PinnedCampaigns, sqlite_config):
        customers = [register(sqlite_config, f"客户{i}") for i in range(30)]
        knows_all_customers(sqlite_config)
        campaign_id = create(sqlite_config, channel="webhook")
        run_id = call(sqlite_config, "operator", "trigger", campaign_id, SPRING_FESTIVAL_2027)["run_id"]
        wait_for(lambda: len(SlowReceiver.received) >= 3, what="the run to be under way")
        call(sqlite_config, "operator", "pause", campaign_id)
        stopped = wait_for(lambda: (status := call(sqlite_config, "operator", "run_status", run_id))["status"]
                           == "stopped" and status, what="the run to stop")
        assert stopped["sent"] < 30 and len(SlowReceiver.received) == stopped["sent"]
        call(sqlite_config, "operator", "resume", campaign_id)
        assert finished(sqlite_config, run_id)["sent"] == 30
        assert sorted(body["customer_id"] for _key, body in SlowReceiver.received) == sorted(customers)
