"""The test helpers' own checks: a missing broker, management API or PostgreSQL is one line with its fix."""

from __future__ import annotations

import psycopg2
import pytest

from tests import support

CLOSED_PORT_URL = "postgresql://postgres:secret@127.0.0.1:1/postgres"


def test_a_missing_broker_is_named_with_how_to_start_it():
    problem = support.broker_problem("amqp://guest:guest@127.0.0.1:1/")
    assert problem.startswith("no RabbitMQ answers at 127.0.0.1:1")
    assert "rabbitmq-server -detached" in problem and "AMQP_URI" in problem and "\n" not in problem


def test_a_missing_management_api_is_named_with_how_to_enable_it():
    problem = support.management_problem("http://127.0.0.1:1")
    assert problem.startswith("RabbitMQ's management API is not reachable at http://127.0.0.1:1 (")
    assert problem.endswith(": enable it with `rabbitmq-plugins enable rabbitmq_management`")


def test_a_private_vhost_fails_the_test_with_the_fix_before_touching_the_broker(monkeypatch):
    monkeypatch.setattr(support, "broker_problem", lambda: None)
    monkeypatch.setattr(support, "management_problem", lambda: "enable it, please")
    with pytest.raises(pytest.fail.Exception, match="^enable it, please$"):
        with support.private_vhost("never-made"):
            pass


def test_a_missing_postgresql_is_named_with_how_to_start_it():
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(CLOSED_PORT_URL, connect_timeout=3)
    problem = support.postgres_unreachable(CLOSED_PORT_URL, refused.value)
    assert problem.startswith("PostgreSQL is not reachable at postgresql://postgres:***@127.0.0.1:1/postgres (")
    assert "`pg_ctlcluster <version> main start`" in problem and "CRM_TEST_POSTGRES_URL" in problem
    assert "\n" not in problem and "secret" not in problem
