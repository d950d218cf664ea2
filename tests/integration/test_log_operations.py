"""crm rebuild / verify / dlq against a running customers service."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, delete, select, text
from typer.testing import CliRunner

from services.customers.projection import directory, erasure_receipts
from services.customers.service import CustomersService
from shared.cli.app import app
from shared.eventstore.envelope import CommandContext, NewEvent
from shared.eventstore.store import EventStore
from tests.postgres_roles import owner_url
from tests.support import rpc_as, running, service_config, signer, token, wait_for


@pytest.fixture
def customers(tmp_path, database_url, amqp_uri):
    config = service_config(tmp_path, amqp_uri, customers=database_url)
    with running(CustomersService, config):
        yield config, database_url


def crm(config, *args):
    env = {"AMQP_URI": config["AMQP_URI"], "CRM_TOKEN": token("admin"), "CRM_DATA_DIR": config["CRM_DATA_DIR"]}
    return CliRunner().invoke(app, ["--json", *args], env=env)


def register_some(config, count=3):
    with rpc_as(config, "agent") as proxy:
        return [proxy.customers.register(name=f"客户{i}", phone=f"1380000000{i}")["customer_id"] for i in range(count)]


def wait_caught_up(config):
    with rpc_as(config, "admin") as proxy:
        wait_for(lambda: proxy.customers.health()["projections"]["customers.directory"]["lag"] == 0,
                 what="directory caught up")


def test_rebuild_reports_equal_then_repairs_a_corrupted_directory(customers):
    config, url = customers
    ids = register_some(config)
    wait_caught_up(config)
    result = crm(config, "rebuild", "customers")
    assert result.exit_code == 0, result.output
    assert '"equal": true' in result.output
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as connection:
        connection.execute(delete(directory).where(directory.c.customer_id == ids[0]))
    engine.dispose()
    repaired = crm(config, "rebuild", "customers")
    assert repaired.exit_code == 0 and '"repaired": true' in repaired.output
    with rpc_as(config, "agent") as proxy:
        assert proxy.customers.find(phone="13800000000")["items"][0]["customer_id"] == ids[0]


def test_rebuild_after_an_erasure_keeps_the_customer_erased_and_the_receipt(customers):
    config, url = customers
    alice, bob = register_some(config, 2)
    with rpc_as(config, "admin") as proxy:
        receipt = proxy.customers.erase(alice, "subject_request")["receipt"]
    wait_caught_up(config)
    result = crm(config, "rebuild", "customers")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert (report["equal"], report["repaired"], report["refused"], report["dead_lettered"]) == (True, False, None, 0)
    assert report["live_checksum"] == report["rebuilt_checksum"]
    with rpc_as(config, "agent") as proxy:
        assert proxy.customers.find(phone="13800000000")["total"] == 0
        assert proxy.customers.find(name_prefix="客户")["items"][0]["customer_id"] == bob
        assert proxy.customers.get(alice)["status"] == "erased"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.connect() as connection:
        kept = connection.execute(select(erasure_receipts.c.receipt_id)
                                  .where(erasure_receipts.c.customer_id == alice)).scalar()
    engine.dispose()
    assert kept == receipt["receipt_id"]


REFUSE_KEY_CHANGES = {
    "sqlite": ["CREATE TRIGGER refuse_key_changes BEFORE UPDATE ON data_keys "
               "BEGIN SELECT RAISE(ABORT, 'the key table is read-only'); END"],
    "postgresql": ["CREATE FUNCTION refuse_key_changes() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN RAISE EXCEPTION 'the key table is read-only'; END $$",
                   "CREATE TRIGGER refuse_key_changes BEFORE UPDATE ON data_keys "
                   "FOR EACH ROW EXECUTE FUNCTION refuse_key_changes()"],
}
ALLOW_KEY_CHANGES = {"sqlite": ["DROP TRIGGER refuse_key_changes"],
                     "postgresql": ["DROP TRIGGER refuse_key_changes ON data_keys"]}


def test_an_erasure_that_keeps_failing_is_never_parked_and_applies_once_the_fault_clears(customers):
    config, url = customers
    [alice] = register_some(config, 1)
    engine = create_engine(owner_url(url).replace("postgresql://", "postgresql+psycopg2://"))  # owns the triggers

    def run(statements):
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    run(REFUSE_KEY_CHANGES[engine.dialect.name])
    with rpc_as(config, "admin") as proxy:
        erased = proxy.customers.erase(alice, "subject_request", command_id="erase-alice")
        assert erased["receipt"]["key_destroyed"] is False
        stalled = lambda: proxy.customers.health()["reactions"]["data-keys.erasure"]["stalled"]  # noqa: E731
        retried = wait_for(lambda: stalled().get("customers", {}).get("attempts", 0) > 3 and stalled(),
                           what="the erasure to be retried after three failures")
        assert retried["customers"]["type"] == "CustomerErased" and "read-only" in retried["customers"]["error"]
        assert proxy.customers.health()["dead_letters"] == 0
        assert proxy.customers.find(phone="13800000000")["total"] == 0  # the directory went on

        run(ALLOW_KEY_CHANGES[engine.dialect.name])
        wait_for(lambda: not stalled(), timeout=30, what="the erasure to apply once the fault cleared")
        again = proxy.customers.erase(alice, "subject_request", command_id="erase-alice")
    engine.dispose()
    assert again["receipt"] == {**erased["receipt"], "key_destroyed": True}


def test_verify_command_reports_the_chain(customers):
    config, _url = customers
    register_some(config, 2)
    result = crm(config, "verify", "customers")
    assert result.exit_code == 0 and '"ok": true' in result.output and '"checked": 2' in result.output


def test_poison_event_goes_to_the_dead_letter_queue_and_the_directory_goes_on(customers):
    config, url = customers
    store = EventStore.open(url, signer("customers"))
    store.append("customer-ghost", [NewEvent("ConsentGiven", {"customer_id": "ghost", "purpose": "callbacks"})],
                 None, CommandContext("ops", "admin"))  # a consent for a customer the directory never saw
    [later] = register_some(config, 1)
    wait_caught_up(config)
    listed = crm(config, "dlq", "list", "customers")
    assert listed.exit_code == 0 and "ghost" in listed.output and "NoResultFound" in listed.output
    with rpc_as(config, "admin") as proxy:
        assert proxy.customers.health()["dead_letters"] == 1
        [letter] = proxy.customers.dead_letters()
        assert proxy.customers.find(phone="13800000000")["items"][0]["customer_id"] == later
    retried = crm(config, "dlq", "retry", "customers", str(letter["id"]))
    assert retried.exit_code == 1 and '"outcome": "failed"' in retried.output
