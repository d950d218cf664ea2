"""A command runs at most once however its request travels: redelivered, late, or sent by the CLI.

The customers service runs in this process on the real broker and
databases; requests are published with pika as nameko's wire protocol
describes them, so the test controls their correlation id and deadline.
"""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from contracts.client import AUTH_HEADER, DEADLINE_HEADER, RPC_EXCHANGE, CrmClient
from services.customers.service import CustomersService
from shared.cli.app import app
from shared.eventstore.tables import command_results
from tests.support import rpc_as, running, service_config, token

ALICE = {"name": "张伟", "phone": "13812345678", "tier": "general"}


@pytest.fixture
def customers(tmp_path, database_url, amqp_uri):
    config = service_config(tmp_path, amqp_uri, customers=database_url)
    with running(CustomersService, config):
        yield config, database_url


class RawRequests:
    """Publishes nameko RPC requests by hand and collects the replies by correlation id."""

    def __init__(self, amqp_uri: str):
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        self.channel = self.connection.channel()
        self.reply_key = str(uuid.uuid4())
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(queue, RPC_EXCHANGE, routing_key=self.reply_key)
        self.replies: list[tuple[str, dict]] = []
        self.channel.basic_consume(queue, lambda _ch, _method, properties, body: self.replies.append(
            (properties.correlation_id, json.loads(body))), auto_ack=True)

    def send(self, method: str, kwargs: dict, correlation_id: str, **headers) -> None:
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                          correlation_id=correlation_id, reply_to=self.reply_key,
                                          headers={AUTH_HEADER: token("agent"), **headers})
        self.channel.basic_publish(RPC_EXCHANGE, f"customers.{method}",
                                   json.dumps({"args": [], "kwargs": kwargs}).encode(), properties)

    def wait_replies(self, count: int) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + 30
        while len(self.replies) < count and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.1)
        assert len(self.replies) >= count, f"got {len(self.replies)} of {count} replies"
        return self.replies

    def close(self) -> None:
        self.connection.close()


def log_head(config) -> int:
    with rpc_as(config, "admin") as proxy:
        return proxy.customers.health()["log_position"]


def test_a_redelivered_request_without_a_command_id_runs_once(customers):
    config, _url = customers
    requests = RawRequests(config["AMQP_URI"])
    try:
        head = log_head(config)
        # The broker hands the service the same message twice (its ack was lost).
        for _delivery in range(2):
            requests.send("register", ALICE, correlation_id="request-1")
        first, second = requests.wait_replies(2)
    finally:
        requests.close()
    assert first[1]["error"] is None and second == first
    assert log_head(config) == head + 1
    with rpc_as(config, "agent") as proxy:
        assert proxy.customers.find(phone=ALICE["phone"])["total"] == 1


def test_a_request_that_arrives_after_its_deadline_is_refused_without_running(customers):
    config, _url = customers
    requests = RawRequests(config["AMQP_URI"])
    try:
        head = log_head(config)
        requests.send("register", ALICE, correlation_id="late-1", **{DEADLINE_HEADER: time.time_ns() // 1_000_000 - 1000})
        [(_id, reply)] = requests.wait_replies(1)
    finally:
        requests.close()
    assert reply["error"]["exc_type"] == "DeadlineExceeded"
    assert "after its caller's deadline" in reply["error"]["value"]
    assert log_head(config) == head


def test_the_pika_client_and_the_cli_send_a_command_id_with_every_command(customers):
    config, url = customers
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))

    def recorded() -> int:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(command_results)
                                      .where(~command_results.c.command_id.like("request:%"))).scalar_one()

    with CrmClient(config["AMQP_URI"], token=token("agent")) as client:
        client.call("customers", "register", **ALICE)
        client.call("customers", "find", phone=ALICE["phone"])  # a read: no command id
    assert recorded() == 1
    env = {"AMQP_URI": config["AMQP_URI"], "CRM_TOKEN": token("agent"), "CRM_DATA_DIR": config["CRM_DATA_DIR"]}
    result = CliRunner().invoke(app, ["--json", "customers", "register", "--name", "李娜", "--phone", "13900000000"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert recorded() == 2
    engine.dispose()
