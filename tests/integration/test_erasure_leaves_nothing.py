"""After an erasure no copy of the customer's personal data is left in any file or database page.

Customers and complaints run on the real broker and real databases (SQLite
files under the data dir, or PostgreSQL), logging at INFO (as ``crm up``
runs them) into a file under the data dir. A customer with a Chinese name,
a tier reason and a complaint with every kind of text is written, read in
clear and refused once with bad input; then erased. Within a few seconds
the raw bytes of every file under the data dir (stores, their -wal/-shm,
the log) hold none of it, nor the customer's wrapped data keys. On
PostgreSQL the tables that held it were rewritten by ``VACUUM FULL`` (a
new file: ``pg_class.relfilenode`` changes; a full vacuum is not counted in
``pg_stat_user_tables``), no live or dead tuple holds it (pageinspect's
``heap_page_items``), and no page of any relation (table, index or TOAST,
free space included) holds its bytes.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Iterator

import psycopg2
import pytest
from nameko.exceptions import RemoteError
from sqlalchemy import select

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.consumers import as_envelope
from shared.eventstore.tables import data_keys
from tests.support import admin_cursor, event_log, private_vhost, rpc_as, running, service_config, wait_for

NAME, PHONE, EMAIL, BIRTHDAY = "欧阳明华", "13987654321", "minghua.ouyang@example.org", "1979-11-23"
TIER_REASON = "签了框架合同 ref TR-5521"
SUMMARY, DESCRIPTION = "洗衣机漏水 ref SU-2290", "第一次使用就漏水\n地板泡坏了 ref DE-7781"
MESSAGE, RESOLUTION = "我们明天上门 ref ME-3356", "已更换新机 ref RE-9902"
ESCALATION, REOPENING = "客户要求上报 ref ES-8830", "退款未到账 ref RO-4417"
PERSONAL_DATA = (NAME, PHONE, EMAIL, BIRTHDAY, TIER_REASON, SUMMARY, DESCRIPTION, MESSAGE, RESOLUTION, ESCALATION,
                 REOPENING)
SCRUB_SECONDS = 5.0
PII_TABLES = {"customers": ("customer_directory", "customer_tags", "data_keys", "dead_letters"),
              "complaints": ("complaint_list", "data_keys", "dead_letters")}


@pytest.fixture
def amqp_uri():
    """A virtual host per test, so no event of another test reaches these services."""
    with private_vhost(f"crm-erasure-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def database_urls(request, data_dir) -> dict[str, str]:
    """One database per service: SQLite files in the data dir, or PostgreSQL databases."""
    if request.param == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        return {service: f"sqlite:///{data_dir / f'{service}.db'}" for service in ("customers", "complaints")}
    make = request.getfixturevalue("postgres_url_factory")
    return {service: make() for service in ("customers", "complaints")}


@pytest.fixture
def service_log(data_dir) -> Iterator[Path]:
    """Everything logged at INFO and above while the test runs, in a file under the data dir."""
    path = data_dir / "logs" / "services.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


@pytest.fixture
def crm(data_dir, database_urls, amqp_uri, service_log):
    config = service_config(data_dir, amqp_uri, **database_urls)
    config["COMPLAINTS"] = {"sla_timer_seconds": 3600}
    with running(CustomersService, config) as customers, running(ComplaintsService, config) as complaints:
        yield config, {"customers": customers, "complaints": complaints}


def call(config, role, service, method, *args, **kwargs):
    with rpc_as(config, role) as proxy:
        return getattr(proxy[service], method)(*args, **kwargs)


def wrapped_keys(containers, customer_id) -> list[bytes]:
    """The customer's data keys as each service stores them, wrapped by the master key."""
    found = []
    for container in containers.values():
        with event_log(container).store.engine.connect() as connection:
            found.append(bytes(connection.execute(select(data_keys.c.wrapped_key)
                                                  .where(data_keys.c.subject_id == customer_id)).scalar_one()))
    return found


def a_customer_with_every_kind_of_text(config) -> str:
    customer_id = call(config, "agent", "customers", "register", name=NAME, phone=PHONE, email=EMAIL,
                       birthday=BIRTHDAY, tags=["vip"], consents=["callbacks"])["customer_id"]
    call(config, "supervisor", "customers", "set_tier", customer_id, "partner", TIER_REASON)
    assert call(config, "agent", "customers", "get", customer_id)["name"] == NAME
    complaint_id = call(config, "agent", "complaints", "file", customer_id, "phone", "after_sales", SUMMARY,
                        DESCRIPTION, "high")["complaint_id"]
    for method, text in (("respond", MESSAGE), ("escalate", ESCALATION), ("resolve", RESOLUTION),
                         ("reopen", REOPENING)):
        call(config, "agent", "complaints", method, complaint_id, text)
    assert call(config, "agent", "complaints", "get", complaint_id)["history"][-1]["text"] == REOPENING
    return customer_id


def refused_with_personal_data(config) -> None:
    """Input the columns cannot hold, carrying the customer's phone: refused, and logged by nameko."""
    for bad in ({"name": "ß" * 60}, {"name": NAME, "tags": ["a\x00b"]}):
        with pytest.raises(RemoteError) as refused:
            call(config, "agent", "customers", "register", phone=PHONE, email=EMAIL, **bad)
        assert refused.value.exc_type == "ValidationError"


def a_dead_letter_quoting_the_customer(containers, config, customer_id) -> None:
    """A letter parked before error texts were redacted: its error quotes the row (as PostgreSQL's DETAIL does)."""
    [registered] = [event for event in call(config, "admin", "customers", "events_since", 0, 100)
                    if event["type"] == "CustomerRegistered" and event["data"]["customer_id"] == customer_id]
    event_log(containers["complaints"]).dead_letters.record(
        "complaints.customers", "customers", as_envelope(registered),
        f"IntegrityError: DETAIL: Failing row contains ({customer_id}, {NAME}, {PHONE}).", 3)


def files_holding(root: Path, needles: list[bytes]) -> dict[str, list[bytes]]:
    """Each file under ``root`` whose raw bytes contain any of ``needles``, with those it contains."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        content = path.read_bytes()
        held = [needle for needle in needles if needle in content]
        if held:
            found[str(path.relative_to(root))] = held
    return found


@pytest.mark.parametrize("database_urls", ["sqlite"], indirect=True)
def test_no_file_under_the_data_dir_holds_an_erased_customers_data(crm, data_dir):
    config, containers = crm
    customer_id = a_customer_with_every_kind_of_text(config)
    refused_with_personal_data(config)
    a_dead_letter_quoting_the_customer(containers, config, customer_id)
    needles = [text.encode("utf-8") for text in PERSONAL_DATA] + wrapped_keys(containers, customer_id)
    assert files_holding(data_dir, needles)  # the stores hold it in clear before the erasure

    call(config, "admin", "customers", "erase", customer_id, "subject_request")

    wait_for(lambda: not files_holding(data_dir, needles), timeout=SCRUB_SECONDS,
             what=f"no file to hold the erased data (still: {files_holding(data_dir, needles)})")
    assert {path.name for path in data_dir.glob("*.db-wal")} == {"customers.db-wal", "complaints.db-wal"}
    assert call(config, "auditor", "customers", "verify_log")["ok"] is True


# -- PostgreSQL ------------------------------------------------------------------------------

RELATIONS = """
    SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'i', 't') AND (n.nspname = 'public' OR c.oid IN (
        SELECT reltoastrelid FROM pg_class WHERE relnamespace = 'public'::regnamespace))
"""
PAGES = "generate_series(0, (pg_relation_size(%(relation)s::regclass) / current_setting('block_size')::int)::int - 1)"
PAGE_HOLDS = f"SELECT count(*) FROM {PAGES} page WHERE position(%(needle)s IN get_raw_page(%(relation)s, page)) > 0"
TUPLE_HOLDS = (f"SELECT count(*) FROM {PAGES} page, heap_page_items(get_raw_page(%(relation)s, page)) item "
               "WHERE position(%(needle)s IN item.t_data) > 0")


def table_files(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    """The file (relfilenode) each table is stored in now; a rewrite gives it a new one."""
    with admin_cursor(url) as cursor:  # pageinspect reads raw pages only for a superuser
        cursor.execute("SELECT relname, relfilenode FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                       "AND relname = ANY(%s)", (list(tables),))
        return dict(cursor.fetchall())


def pages_holding(url: str, needles: list[bytes]) -> dict[str, list[bytes]]:
    """Relations (tables, indexes, TOAST) with a page whose raw bytes, free space included, hold a needle."""
    found = {}
    with admin_cursor(url) as cursor:
        cursor.execute(RELATIONS)
        for (relation,) in cursor.fetchall():
            held = []
            for needle in needles:
                cursor.execute(PAGE_HOLDS, {"relation": relation, "needle": psycopg2.Binary(needle)})
                if cursor.fetchone()[0]:
                    held.append(needle)
            if held:
                found[relation] = held
    return found


def tuples_holding(url: str, tables: tuple[str, ...], needles: list[bytes]) -> dict[str, int]:
    """Per table, its live or dead tuples whose data holds a needle (pageinspect's heap_page_items)."""
    counts = {}
    with admin_cursor(url) as cursor:
        for table in tables:
            counts[table] = 0
            for needle in needles:
                cursor.execute(TUPLE_HOLDS, {"relation": table, "needle": psycopg2.Binary(needle)})
                counts[table] += cursor.fetchone()[0]
    return counts


@pytest.mark.parametrize("database_urls", ["postgresql"], indirect=True)
def test_no_database_page_or_log_file_holds_an_erased_customers_data(crm, data_dir, database_urls):
    config, containers = crm
    for url in database_urls.values():
        with admin_cursor(url) as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    customer_id = a_customer_with_every_kind_of_text(config)
    refused_with_personal_data(config)
    a_dead_letter_quoting_the_customer(containers, config, customer_id)
    needles = [text.encode("utf-8") for text in PERSONAL_DATA] + wrapped_keys(containers, customer_id)
    before = {service: table_files(url, PII_TABLES[service]) for service, url in database_urls.items()}
    assert pages_holding(database_urls["customers"], needles)  # in clear before the erasure

    call(config, "admin", "customers", "erase", customer_id, "subject_request")

    def rewritten():
        return all(not set(table_files(url, PII_TABLES[service]).items()) & set(before[service].items())
                   for service, url in database_urls.items())

    wait_for(rewritten, timeout=SCRUB_SECONDS, what="the tables that held the data to be rewritten")
    for service, url in database_urls.items():
        assert tuples_holding(url, PII_TABLES[service], needles) == dict.fromkeys(PII_TABLES[service], 0)
        assert pages_holding(url, needles) == {}, service
    assert not files_holding(data_dir, needles)  # the service log
