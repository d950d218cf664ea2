"""``crm doctor`` and the checks it runs."""

from __future__ import annotations

import json
import os

from shared.cli.checks import check_python, writable_dir_problem
from tests.unit.cli import CLOSED_BROKER, MASTER_KEY, PRIVATE_KEY, PUBLIC_KEY


def doctor_report(result) -> dict[str, dict[str, str]]:
    report = json.loads(result.stdout)
    assert report["ok"] is (result.exit_code == 0)
    return {check["name"]: check for check in report["checks"]}


def test_doctor_reports_a_broker_that_is_down(invoke):
    result = invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER})
    assert result.exit_code == 1
    checks = doctor_report(result)
    broker = checks["broker"]
    assert broker["status"] == "fail"
    assert "127.0.0.1:1" in broker["detail"] and "refused" in broker["detail"].lower()
    assert "rabbitmq-server" in broker["fix"] and "AMQP_URI" in broker["fix"]
    assert checks["management"]["status"] in ("warn", "ok")  # never required
    assert checks["python"]["status"] == "ok"
    assert checks["data dir"]["status"] == "ok"


def test_doctor_says_what_is_missing_in_plain_text(invoke):
    result = invoke("doctor", env={"AMQP_URI": CLOSED_BROKER})
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "broker fail no RabbitMQ answers at 127.0.0.1:1" in text
    assert "fix: start RabbitMQ" in text
    assert "required item(s) missing: broker" in text


def test_doctor_reports_an_unwritable_data_dir(invoke, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER, "CRM_DATA_DIR": str(blocker / "data")})
    assert result.exit_code == 1
    checks = doctor_report(result)
    assert checks["data dir"]["status"] == "fail"
    assert f"{blocker} is not a directory" in checks["data dir"]["detail"]
    assert "CRM_DATA_DIR" in checks["data dir"]["fix"]
    assert checks["secrets"]["status"] == "fail"  # nowhere to generate dev secrets
    assert not (blocker / "data").exists()


def test_doctor_notes_generated_and_accepts_configured_secrets(invoke, tmp_path):
    generated = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER}))
    assert generated["secrets"]["status"] == "note"
    assert "generated" in generated["secrets"]["detail"]
    assert not (tmp_path / "data" / "secrets.json").exists()  # the doctor only looks
    for token_key in ({"CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY}, {"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY}):
        configured = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER,
                                                                   "CRM_MASTER_KEY": MASTER_KEY, **token_key}))
        assert configured["secrets"]["status"] == "ok"
        assert configured["config"]["status"] == "ok"


def test_doctor_reports_an_unreachable_database(invoke):
    url = "postgresql://postgres@127.0.0.1:1/customers"
    checks = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER,
                                                           "CRM_CUSTOMERS_DATABASE_URL": url}))
    store = checks["customers store"]
    assert store["status"] == "fail"
    assert "127.0.0.1:1" in store["detail"]
    assert "PostgreSQL" in store["fix"]


def test_doctor_accepts_the_default_sqlite_store(invoke, tmp_path):
    checks = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER}))
    assert checks["customers store"]["status"] == "ok"
    assert str(tmp_path / "data" / "customers.db") in checks["customers store"]["detail"]


def test_doctor_reports_invalid_configuration_and_exits_1(invoke):
    checks = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": "http://broker"}))
    assert checks["config"]["status"] == "fail"
    assert "AMQP_URI" in checks["config"]["detail"]


def test_doctor_reports_service_code_that_does_not_import(invoke):
    checks = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER,
                                                           "CRM_EXTRA_SERVICES": "ghost=no_such_module:Ghost"}))
    assert checks["ghost code"]["status"] == "fail"
    assert "no_such_module" in checks["ghost code"]["detail"]


def test_python_version_check():
    assert check_python((3, 11, 7)).status == "ok"
    too_new = check_python((3, 12, 1))
    assert too_new.status == "fail" and "3.11" in too_new.detail and "python3.11" in too_new.fix


def test_writable_dir_problem(tmp_path):
    assert writable_dir_problem(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    assert "is not a directory" in writable_dir_problem(tmp_path / "file" / "sub")
    assert os.listdir(tmp_path) == ["file"]  # probes leave nothing behind


def test_doctor_names_malformed_extra_services_and_checks_the_rest(invoke):
    checks = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER,
                                                           "CRM_EXTRA_SERVICES": "probe=not a path"}))
    assert checks["services"]["status"] == "fail"
    assert "CRM_EXTRA_SERVICES" in checks["services"]["detail"] and "CRM_EXTRA_SERVICES" in checks["services"]["fix"]
    assert checks["broker"]["status"] == "fail" and checks["data dir"]["status"] == "ok"  # the rest still run


def test_doctor_reads_how_far_each_sqlite_schema_is(invoke, tmp_path):
    from sqlalchemy import text

    from shared.eventstore.engine import STORE_HISTORY, database_engine
    from shared.migrations import upgrade

    def schema() -> dict[str, str]:
        return doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER}))["customers schema"]

    fresh = schema()
    assert fresh["status"] == "ok" and "does not exist yet" in fresh["detail"]

    engine = database_engine(f"sqlite:///{tmp_path / 'data' / 'customers.db'}")
    try:
        upgrade(engine, STORE_HISTORY.location, STORE_HISTORY.version_table, "0004")
        behind = schema()
        assert behind["status"] == "note"
        assert "alembic_version_store at 0004, head 0005" in behind["detail"]
        assert "alembic_version_customers not started" in behind["detail"]

        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version_store SET version_num = '0099'"))
        newer = schema()
        assert newer["status"] == "fail"
        assert "revision 0099, which this code does not know" in newer["detail"]
    finally:
        engine.dispose()
