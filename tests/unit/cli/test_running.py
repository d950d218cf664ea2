"""``crm up`` and ``crm serve``: the pieces that need no broker."""

from __future__ import annotations

import stat

import yaml

from shared.cli import supervisor
from shared.cli.supervisor import SupervisedProcess, service_config
from shared.config import load_settings
from shared.processes import write_service_config
from tests.unit.cli import MASTER_KEY, SECRET


def test_unknown_service_for_up_exits_2_naming_the_option(invoke):
    result = invoke("up", "--services", "customers,nosuch")
    assert result.exit_code == 2
    assert "--services: unknown service 'nosuch'; registered: complaints, customers" in result.stderr


def test_malformed_extra_services_exit_2_naming_the_variable(invoke):
    result = invoke("up", env={"CRM_EXTRA_SERVICES": "probe=not a path"})
    assert result.exit_code == 2
    assert "CRM_EXTRA_SERVICES:" in result.stderr


def test_service_config_file_is_private_and_nameko_reads_it(tmp_path, monkeypatch):
    from nameko.cli.main import setup_yaml_parser

    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_SECRET": SECRET, "CRM_MASTER_KEY": MASTER_KEY,
                              "CRM_CUSTOMERS_DATABASE_URL": "postgresql://u@h/customers"}, environ={})
    config = service_config(settings, {"max_workers": 4, "CRM_SECRET": None, "AMQP_URI": "amqp://other/"})
    path = write_service_config(tmp_path / "run", "customers", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    setup_yaml_parser()
    loaded = yaml.safe_load(path.read_text())
    assert loaded["max_workers"] == 4
    assert loaded["AMQP_URI"] == settings.amqp_uri  # settings win over the file they came from
    assert loaded["CRM_CUSTOMERS_DATABASE_URL"] == "postgresql://u@h/customers"
    assert load_settings(loaded, environ={}) == settings
    assert loaded["LOGGING"]["version"] == 1
    assert [entry.name for entry in (tmp_path / "run").iterdir()] == ["customers.yml"]


def test_a_stable_child_restarts_at_once_and_a_crash_loop_backs_off(tmp_path, monkeypatch):
    child = SupervisedProcess("probe", "m:C", tmp_path / "c.yml", tmp_path / "c.log")
    clock = [1000.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: clock[0])
    child.started_at = clock[0]
    clock[0] += supervisor.STABLE_AFTER_SECONDS + 1  # ran fine, then was killed
    assert child.schedule_restart() == supervisor.FIRST_RESTART_SECONDS
    assert child.state == "backoff" and child.restart_at == clock[0] + supervisor.FIRST_RESTART_SECONDS
    delays = []
    for _ in range(7):
        child.started_at = clock[0]
        clock[0] += 2  # crashed two seconds after each start
        delays.append(child.schedule_restart())
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    child.started_at = clock[0]
    clock[0] += supervisor.STABLE_AFTER_SECONDS
    assert child.schedule_restart() == supervisor.FIRST_RESTART_SECONDS
