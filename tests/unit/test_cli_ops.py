"""The operating commands of ``crm``: token, doctor, config errors, and the CLI plumbing.

No broker is needed: the broker checks here point at a closed local port.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import time
import types

import pytest
import typer
import yaml
from typer.testing import CliRunner

from shared.auth import Principal, verify_token
from shared.cli import ops, rpc
from shared.cli.app import app, mount_service_clis
from shared.config import load_settings
from shared.discovery import ServiceSpec, installed_services
from shared.errors import Unauthenticated

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:1/"
SECRET = base64.b64encode(b"s" * 32).decode()
MASTER_KEY = base64.b64encode(b"m" * 32).decode()
CRM_KEYS = ("AMQP_URI", "CRM_DATA_DIR", "CRM_SECRET", "CRM_MASTER_KEY", "CRM_TOKEN", "CRM_EXTRA_SERVICES",
            *(f"CRM_{name.upper()}_DATABASE_URL" for name in installed_services()))


@pytest.fixture(autouse=True)
def fresh_cli_state():
    """The root options live in module state: leave none behind for other tests."""
    rpc.configure()
    yield
    rpc.configure()


@pytest.fixture
def invoke(tmp_path):
    """Run ``crm`` in-process with a clean CRM environment plus ``env``."""

    def run(*args: str, env: dict[str, str | None] | None = None):
        base: dict[str, str | None] = {key: None for key in CRM_KEYS}
        base["CRM_DATA_DIR"] = str(tmp_path / "data")
        base.update(env or {})
        return CliRunner(env=base).invoke(app, list(args))

    return run


def doctor_report(result) -> dict[str, dict[str, str]]:
    report = json.loads(result.stdout)
    assert report["ok"] is (result.exit_code == 0)
    return {check["name"]: check for check in report["checks"]}


# -- crm token ---------------------------------------------------------------

def test_token_is_signed_with_the_configured_secret(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice",
                    env={"CRM_SECRET": SECRET, "CRM_MASTER_KEY": MASTER_KEY})
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert verify_token(base64.b64decode(SECRET), token) == Principal("alice", "agent")


def test_token_without_secrets_uses_the_generated_dev_secret(invoke, tmp_path):
    result = invoke("token", "--role", "supervisor", "--actor", "bob")
    assert result.exit_code == 0, result.output
    settings = load_settings(environ={"CRM_DATA_DIR": str(tmp_path / "data")})
    assert verify_token(settings.secret, result.stdout.strip()) == Principal("bob", "supervisor")
    secrets_file = tmp_path / "data" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_token_ttl_sets_the_expiry(invoke):
    result = invoke("--json", "token", "--role", "auditor", "--actor", "carol", "--ttl", "60",
                    env={"CRM_SECRET": SECRET, "CRM_MASTER_KEY": MASTER_KEY})
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert (issued["role"], issued["actor"]) == ("auditor", "carol")
    secret = base64.b64decode(SECRET)
    assert verify_token(secret, issued["token"], now=time.time() + 50).role == "auditor"
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(secret, issued["token"], now=time.time() + 61)


def test_bad_role_exits_2_naming_the_option(invoke):
    result = invoke("token", "--role", "boss", "--actor", "alice")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--role: must be one of agent, supervisor, operator, auditor, service, admin" in result.stderr


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_non_positive_ttl_exits_2_naming_the_option(invoke, ttl):
    result = invoke("token", "--role", "agent", "--actor", "alice", "--ttl", ttl)
    assert result.exit_code == 2
    assert "--ttl: must be positive" in result.stderr


def test_missing_actor_exits_2_naming_the_option(invoke):
    result = invoke("token", "--role", "agent")
    assert result.exit_code == 2
    assert "--actor" in result.output


def test_overlong_actor_exits_2_naming_the_option(invoke):
    result = invoke("token", "--role", "agent", "--actor", "x" * 101)
    assert result.exit_code == 2
    assert "--actor: must be 1 to 100 characters" in result.stderr


# -- configuration errors ----------------------------------------------------

def test_invalid_setting_in_the_environment_exits_2_naming_it(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice", env={"AMQP_URI": "http://broker"})
    assert result.exit_code == 2
    assert "invalid configuration" in result.stderr
    assert "AMQP_URI:" in result.stderr


def test_unreadable_config_file_exits_2(invoke, tmp_path):
    missing = tmp_path / "nowhere.yml"
    result = invoke("--config", str(missing), "token", "--role", "agent", "--actor", "alice")
    assert result.exit_code == 2
    assert f"config: cannot read {missing}" in result.stderr


def test_config_file_values_are_validated_field_by_field(invoke, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("AMQP_URI: ftp://nowhere\nCRM_MASTER_KEY: short\nCRM_SECRET: ${NOT_SET_ANYWHERE:x}\n")
    result = invoke("--config", str(config), "token", "--role", "agent", "--actor", "alice")
    assert result.exit_code == 2
    assert "AMQP_URI:" in result.stderr
    assert "CRM_SECRET:" in result.stderr  # too short after substitution


def test_bad_master_key_is_named(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice",
                    env={"CRM_SECRET": SECRET, "CRM_MASTER_KEY": "c2hvcnQ="})
    assert result.exit_code == 2
    assert "CRM_MASTER_KEY: must be 32 bytes, base64-encoded" in result.stderr


def test_unknown_service_for_up_exits_2_naming_the_option(invoke):
    result = invoke("up", "--services", "customers,nosuch")
    assert result.exit_code == 2
    assert "--services: unknown service 'nosuch'; registered: complaints, customers" in result.stderr


def test_malformed_extra_services_exit_2_naming_the_variable(invoke):
    result = invoke("up", env={"CRM_EXTRA_SERVICES": "probe=not a path"})
    assert result.exit_code == 2
    assert "CRM_EXTRA_SERVICES:" in result.stderr


# -- crm doctor --------------------------------------------------------------

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
    configured = doctor_report(invoke("--json", "doctor", env={"AMQP_URI": CLOSED_BROKER, "CRM_SECRET": SECRET,
                                                               "CRM_MASTER_KEY": MASTER_KEY}))
    assert configured["secrets"]["status"] == "ok"


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
    assert ops.check_python((3, 11, 7)).status == "ok"
    too_new = ops.check_python((3, 12, 1))
    assert too_new.status == "fail" and "3.11" in too_new.detail and "python3.11" in too_new.fix


# -- RPC helpers -------------------------------------------------------------

def test_remote_validation_errors_become_one_line_per_field():
    value = "invalid input: {'phone': ['not a phone number'], 'changes': {'email': ['Not a valid email.']}}"
    assert rpc.remote_error_message("ValidationError", value) == \
        "ValidationError: phone: not a phone number; changes.email: Not a valid email."
    assert rpc.remote_error_message("NotFound", "customer c-1\n does not exist") == \
        "NotFound: customer c-1 does not exist"
    assert rpc.remote_error_message("ValidationError", "something else") == "ValidationError: something else"


def test_rpc_call_without_a_token_exits_2(capsys):
    rpc.configure(token=None)
    with pytest.raises(typer.Exit) as raised:
        rpc.rpc_call("customers", "get", "c-1")
    assert raised.value.exit_code == 2
    assert "no token" in capsys.readouterr().err


def test_rpc_call_to_an_unreachable_broker_exits_1(capsys, monkeypatch):
    monkeypatch.setenv("AMQP_URI", CLOSED_BROKER)
    rpc.configure(token="t", timeout=2)
    with pytest.raises(typer.Exit) as raised:
        rpc.rpc_call("customers", "get", "c-1")
    assert raised.value.exit_code == 1
    err = capsys.readouterr().err
    assert "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/" in err
    assert "guest:guest" not in err


def test_json_output_of_records_and_tables(capsys):
    rpc.configure(json_output=True)
    rpc.print_record({"customer_id": "c-1", "version": 2})
    rpc.print_table([{"name": "张三", "tier": "general"}], ["name", "tier"])
    rpc.emit([1, 2])
    first, second, third = _json_documents(capsys.readouterr().out)
    assert first == {"customer_id": "c-1", "version": 2}
    assert second == [{"name": "张三", "tier": "general"}]
    assert third == [1, 2]


def test_terminal_output_of_records_and_tables(capsys):
    rpc.configure(json_output=False)
    rpc.print_record({"customer_id": "c-1", "tags": ["vip"], "erased": False})
    rpc.print_table([{"name": "[bold]张三", "tier": None}], [("name", "Name"), "tier"])
    out = capsys.readouterr().out
    assert "customer_id" in out and "c-1" in out and '["vip"]' in out and "no" in out
    assert "Name" in out and "[bold]张三" in out  # values are never read as markup


def _json_documents(text: str) -> list:
    decoder, position, documents = json.JSONDecoder(), 0, []
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


# -- service command lines ---------------------------------------------------

@pytest.fixture
def scratch_cli(tmp_path, monkeypatch):
    """A service spec whose command line is a module written into tmp_path for the test."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, cli_source: str | None) -> ServiceSpec:
        if cli_source is None:
            return ServiceSpec(name, f"{name}_service:Service")
        (tmp_path / f"{name}_cli.py").write_text(cli_source)
        return ServiceSpec(name, f"{name}_service:Service", cli=f"{name}_cli:app")

    return make


def test_service_clis_are_mounted_and_broken_ones_explain_themselves(scratch_cli):
    specs = [scratch_cli("zz_working", "import typer\napp = typer.Typer()\n\n"
                                       "@app.command()\ndef hello(name: str):\n    print('hello', name)\n\n"
                                       "@app.command()\ndef bye():\n    pass\n"),
             scratch_cli("zz_broken", "raise RuntimeError('half-written')\n"),
             scratch_cli("zz_without_cli", None)]
    root = typer.Typer()
    ops.register(root)
    problems = mount_service_clis(root, specs)
    assert problems == {"zz_broken": "RuntimeError: half-written"}
    runner = CliRunner()
    hello = runner.invoke(root, ["zz_working", "hello", "ann"])
    assert hello.exit_code == 0 and "hello ann" in hello.stdout
    broken = runner.invoke(root, ["zz_broken", "anything", "--at-all"])
    assert broken.exit_code == 1
    assert "the zz_broken commands do not load: RuntimeError: half-written" in broken.stderr
    assert runner.invoke(root, ["zz_without_cli"]).exit_code == 2  # no such command


def test_the_installed_services_commands_are_mounted():
    names = {command.name for command in typer.main.get_command(app).commands.values()}
    assert {"up", "serve", "health", "doctor", "token", "contracts"} <= names
    assert {"customers", "complaints"} <= names


# -- crm contracts export ----------------------------------------------------

def test_contracts_export_calls_the_exporter(invoke, tmp_path, monkeypatch):
    written = [tmp_path / "out" / "a.json", tmp_path / "out" / "b.json"]
    exporter = types.ModuleType(ops.CONTRACTS_EXPORTER)
    exporter.export = lambda out: written if out == tmp_path / "out" else []
    monkeypatch.setitem(sys.modules, ops.CONTRACTS_EXPORTER, exporter)
    result = invoke("--json", "contracts", "export", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [str(path) for path in written]


def test_contracts_export_says_when_it_is_unavailable(invoke, monkeypatch):
    monkeypatch.setitem(sys.modules, ops.CONTRACTS_EXPORTER, None)
    result = invoke("contracts", "export")
    assert result.exit_code == 1
    assert "not available" in result.stderr


# -- crm up: the pieces that need no broker ----------------------------------

def test_service_config_file_is_private_and_nameko_reads_it(tmp_path, monkeypatch):
    from nameko.cli.main import setup_yaml_parser

    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_SECRET": SECRET, "CRM_MASTER_KEY": MASTER_KEY,
                              "CRM_CUSTOMERS_DATABASE_URL": "postgresql://u@h/customers"}, environ={})
    config = ops.service_config(settings, {"max_workers": 4, "CRM_SECRET": None, "AMQP_URI": "amqp://other/"})
    path = ops.write_service_config(tmp_path / "run", "customers", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    setup_yaml_parser()
    loaded = yaml.safe_load(path.read_text())
    assert loaded["max_workers"] == 4
    assert loaded["AMQP_URI"] == settings.amqp_uri  # settings win over the file they came from
    assert loaded["CRM_CUSTOMERS_DATABASE_URL"] == "postgresql://u@h/customers"
    assert load_settings(loaded, environ={}) == settings
    assert loaded["LOGGING"]["version"] == 1
    assert [entry.name for entry in (tmp_path / "run").iterdir()] == ["customers.yml"]


def test_restart_backoff_doubles_and_resets_after_a_stable_run(tmp_path, monkeypatch):
    child = ops.ServiceProcess("probe", "m:C", tmp_path / "c.yml", tmp_path / "c.log")
    clock = [1000.0]
    monkeypatch.setattr(ops.time, "monotonic", lambda: clock[0])
    delays = []
    for _ in range(7):
        child.started_at = clock[0]
        clock[0] += 2  # crashed two seconds after each start
        delays.append(child.schedule_restart())
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    child.started_at = clock[0]
    clock[0] += ops.STABLE_AFTER_SECONDS + 1
    assert child.schedule_restart() == 1
    assert child.state == "backoff" and child.restart_at == clock[0] + 1


def test_redact_hides_passwords_only():
    assert rpc.redact("amqp://crm:s3cret@rabbit:5672/vh") == "amqp://crm:***@rabbit:5672/vh"
    assert rpc.redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_writable_dir_problem(tmp_path):
    assert ops.writable_dir_problem(tmp_path / "new" / "deeper") is None
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    assert "is not a directory" in ops.writable_dir_problem(tmp_path / "file" / "sub")
    assert os.listdir(tmp_path) == ["file"]  # probes leave nothing behind


def test_health_names_projections_that_refuse_a_replaced_upstream_log():
    answer = {"projections": {"complaints.customers": {"lag": 0, "forked": {"customers": "the log was replaced"}},
                              "complaints.list": {"lag": 0, "forked": {}}}}
    assert ops.refused_upstreams(answer) == \
        "complaints.customers refuses customers (its log was replaced: crm rebuild)"
    assert ops.refused_upstreams({"projections": {"complaints.list": {"lag": 0, "forked": {}}}}) == ""
    assert ops.refused_upstreams({"log_position": 3}) == ""
