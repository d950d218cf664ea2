"""``crm migrate``, and a service whose role may not migrate its database, as production runs them.

On PostgreSQL the database belongs to the owner role and the service
connects as its own role (tests/postgres_roles.py): the service refuses to
start until the owner migrated, and ``crm migrate`` is how the owner does.
"""

from __future__ import annotations

import json

import pytest
from nameko.containers import ServiceContainer
from typer.testing import CliRunner

from services.customers.service import CustomersService
from shared.cli.app import app
from shared.config import owner_url_key
from shared.eventstore.engine import STORE_HISTORY
from shared.migrations import SchemaNotMigrated
from shared.service_migration import histories_of
from tests.postgres_roles import SERVICE_ROLE
from tests.support import rpc_as, service_config

HEADS = {history.version_table: history.head() for history in histories_of(CustomersService)}
OWNER_URL = owner_url_key("customers")


def crm_json(config, *args):
    """``crm --json ARGS`` with ``config`` as its environment (``None`` unsets a key)."""
    env = {key: value for key, value in config.items() if isinstance(value, str) or value is None}
    return CliRunner().invoke(app, ["--json", *args], env=env)


def crm_migrate(config, *names):
    return crm_json(config, "migrate", *names)


def crm_doctor(config) -> dict[str, dict[str, str]]:
    """``crm doctor``'s findings by name."""
    return {check["name"]: check for check in json.loads(crm_json(config, "doctor").output)["checks"]}


@pytest.fixture
def config(tmp_path, amqp_uri, postgres_url_factory):
    """The customers service on a database the owner made and has not migrated yet."""
    return service_config(tmp_path, amqp_uri, customers=postgres_url_factory(migrated=False))


def test_the_service_refuses_to_start_until_the_owner_migrated_its_database(config):
    service_only = {**config, OWNER_URL: None}  # a service is never given the owner's URL
    refused = ServiceContainer(CustomersService, service_only)
    with pytest.raises(SchemaNotMigrated, match=f"role {SERVICE_ROLE} may not migrate it .*"
                                                f"run `crm migrate customers` with {OWNER_URL}"):
        refused.start()
    refused.kill()

    without_owner = crm_migrate(service_only, "customers")
    assert without_owner.exit_code == 1
    assert f"customers: role {SERVICE_ROLE} may not migrate database" in without_owner.output
    assert f"set {OWNER_URL}" in without_owner.output

    doctor = crm_doctor(service_only)["customers schema"]
    assert doctor["status"] == "fail" and "the service's role may not migrate it" in doctor["detail"]
    assert doctor["fix"] == f"run crm migrate customers with {OWNER_URL} set to the owner's URL"

    migrated = crm_migrate(config, "customers")
    assert migrated.exit_code == 0, migrated.output
    assert crm_doctor(service_only)["customers schema"]["status"] == "ok"
    [row] = json.loads(migrated.output)
    assert (row["service"], row["revisions"], row["granted_to"]) == ("customers", HEADS, SERVICE_ROLE)
    assert ":***@" in row["database"]  # the owner's password is not printed

    container = ServiceContainer(CustomersService, service_only)
    container.start()
    try:
        with rpc_as(service_only, "agent") as proxy:
            customer_id = proxy.customers.register(name="张伟", phone="13800000000")["customer_id"]
            assert proxy.customers.get(customer_id)["name"] == "张伟"
    finally:
        container.stop()


def test_on_sqlite_the_service_migrates_itself_and_crm_migrate_does_the_same(tmp_path):
    config = service_config(tmp_path, customers=f"sqlite:///{tmp_path / 'customers.db'}")
    first, again = crm_migrate(config, "customers"), crm_migrate(config, "customers")
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert json.loads(again.output) == [{"service": "customers", "database": config["CRM_CUSTOMERS_DATABASE_URL"],
                                         "revisions": HEADS, "granted_to": None}]
    assert HEADS["alembic_version_store"] == STORE_HISTORY.head()
