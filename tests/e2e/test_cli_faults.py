"""The crm command line under faults: what the user saw fail never runs later, and an outage is named.

The customers service runs in this process in a virtual host of its own;
``crm`` runs in-process against it as a user would call it.
"""

from __future__ import annotations

from typer.testing import CliRunner

from services.customers.service import CustomersService
from shared.cli.app import app
from tests.e2e.outages import messages_in, outage, vhost_of
from tests.support import rpc_as, running, service_config, token, wait_for


def crm(config, *args: str):
    env = {"AMQP_URI": config["AMQP_URI"], "CRM_TOKEN": token("agent"), "CRM_DATA_DIR": config["CRM_DATA_DIR"]}
    return CliRunner().invoke(app, list(args), env=env)


def customers_with_phone(config, phone: str) -> int:
    with rpc_as(config, "agent") as proxy:
        return proxy.customers.find(phone=phone)["total"]


def test_a_command_the_cli_gave_up_on_does_not_run_when_the_service_comes_back(fault_vhost, tmp_path):
    config = service_config(tmp_path, fault_vhost)
    with running(CustomersService, config):
        pass  # the service's request queue now exists and outlives the service
    gave_up = crm(config, "--timeout", "1", "customers", "register", "--name", "王芳", "--phone", "13700000001")
    assert gave_up.exit_code == 1
    assert "customers.register did not answer within 1s" in gave_up.output
    wait_for(lambda: messages_in(vhost_of(fault_vhost), "rpc-customers") == 1, timeout=15,
             what="the broker to show the request waiting for the service")  # its statistics lag a little

    with running(CustomersService, config) as customers:
        wait_for(lambda: messages_in(vhost_of(fault_vhost), "rpc-customers") == 0, timeout=15,
                 what="the service to take the waiting request")
        assert customers_with_phone(config, "13700000001") == 0
        with rpc_as(config, "admin") as proxy:
            assert proxy.customers.health()["log_position"] == 0


def test_the_cli_names_a_broker_outage_and_works_once_the_broker_is_back(fault_vhost, tmp_path):
    config = service_config(tmp_path, fault_vhost)
    with running(CustomersService, config):
        with outage(fault_vhost):
            refused = crm(config, "customers", "register", "--name", "王芳", "--phone", "13700000002")
        assert refused.exit_code == 1
        assert f"cannot reach RabbitMQ at {fault_vhost.replace('guest:guest@', 'guest:***@')}" in refused.output
        assert "run `crm doctor`" in refused.output

        wait_for(lambda: crm(config, "--json", "customers", "register", "--name", "王芳", "--phone", "13700000002",
                             "--command-id", "register-wang-fang").exit_code == 0,
                 timeout=10, what="the CLI to work again")
        again = crm(config, "--json", "customers", "register", "--name", "王芳", "--phone", "13700000002",
                    "--command-id", "register-wang-fang")
        assert again.exit_code == 0, again.output
        assert customers_with_phone(config, "13700000002") == 1
