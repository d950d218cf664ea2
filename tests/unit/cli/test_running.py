"""``crm up`` and ``crm serve``: the pieces that need no broker."""

from __future__ import annotations

import dataclasses
import json
import stat

import jwt
import yaml

from shared.cli import supervisor
from shared.cli.supervisor import SupervisedProcess, service_config
from shared.config import load_settings
from shared.discovery import ServiceSpec, service_spec
from shared.processes import write_service_config
from shared.service_tokens import issue_service_token, service_audience
from shared.ed25519_text import public_key_text
from shared.signing import EventSigner
from tests.unit.cli import ISSUER_KEY, MASTER_KEY, PRIVATE_KEY, PUBLIC_KEY


def test_unknown_service_for_up_exits_2_naming_the_option(invoke):
    result = invoke("up", "--services", "customers,nosuch")
    assert result.exit_code == 2
    assert "--services: unknown service 'nosuch'; registered: audit, callbacks, campaigns, complaints, customers" in result.stderr


def test_malformed_extra_services_exit_2_naming_the_variable(invoke):
    result = invoke("up", env={"CRM_EXTRA_SERVICES": "probe=not a path"})
    assert result.exit_code == 2
    assert "CRM_EXTRA_SERVICES:" in result.stderr


def test_service_config_file_is_private_and_nameko_reads_it(tmp_path, monkeypatch):
    from nameko.cli.main import setup_yaml_parser

    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY,
                              "CRM_MASTER_KEY": MASTER_KEY, "CRM_CUSTOMERS_DATABASE_URL": "postgresql://u@h/customers"},
                             environ={}, issuer=True)
    base = {"max_workers": 4, "CRM_MASTER_KEY": None, "AMQP_URI": "amqp://other/",
            "CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY}
    config = service_config(settings, base, service_spec("customers"), ISSUER_KEY)
    path = write_service_config(tmp_path / "run", "customers", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    setup_yaml_parser()
    loaded = yaml.safe_load(path.read_text())
    assert loaded["max_workers"] == 4
    assert loaded["AMQP_URI"] == settings.amqp_uri  # settings win over the file they came from
    assert loaded["CRM_CUSTOMERS_DATABASE_URL"] == "postgresql://u@h/customers"
    assert "CRM_TOKEN_PRIVATE_KEY" not in loaded  # the service gets the public key only
    service = load_settings(loaded, environ={})
    assert dataclasses.replace(service, signing=settings.signing) == \
        dataclasses.replace(settings, service_token=loaded["CRM_SERVICE_TOKEN"])
    assert service.token_private_key is None
    assert service.signing.signer("customers").public_key == settings.signing.signer("customers").public_key
    assert service.signing.public_texts() == settings.signing.public_texts()
    assert set(service.signing.private_keys) == {"customers"}  # its own signing key only
    assert loaded["LOGGING"]["version"] == 1
    assert [entry.name for entry in (tmp_path / "run").iterdir()] == ["customers.yml"]


def test_a_service_token_is_for_the_services_its_log_follows_and_itself():
    complaints = jwt.decode(issue_service_token(ISSUER_KEY, service_spec("complaints")),
                            options={"verify_signature": False})
    assert (complaints["sub"], complaints["role"]) == ("complaints", "service")
    assert complaints["aud"] == ["callbacks", "complaints", "customers"]  # it files the complaints callbacks raise
    assert service_audience(service_spec("callbacks")) == ["callbacks", "complaints", "customers"]
    assert service_audience(service_spec("customers")) == ["customers"]
    assert service_audience(ServiceSpec("probe", "shared.bench.noop_service:NoopService")) == ["probe"]


def test_crm_serve_without_the_issuer_key_passes_on_the_configured_service_token(tmp_path):
    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY,
                              "CRM_MASTER_KEY": MASTER_KEY, "CRM_SERVICE_TOKEN": "a.b.c"}, environ={}, issuer=True)
    assert service_config(settings, {}, service_spec("customers"), None)["CRM_SERVICE_TOKEN"] == "a.b.c"


def test_a_service_config_leaves_the_owner_url_out(tmp_path):
    base = {"CRM_DATA_DIR": str(tmp_path), "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": MASTER_KEY,
            "CRM_CUSTOMERS_DATABASE_URL": "postgresql://crm_customers@h/customers",
            "CRM_CUSTOMERS_OWNER_DATABASE_URL": "postgresql://crm_owner@h/customers"}
    config = service_config(load_settings(base, environ={}), base, service_spec("customers"), None)
    assert config["CRM_CUSTOMERS_DATABASE_URL"] == "postgresql://crm_customers@h/customers"
    assert not [key for key in config if "OWNER" in key]


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


def test_serve_without_its_signing_key_exits_2_naming_the_setting(invoke):
    public_keys = json.dumps({"customers": public_key_text(EventSigner.generate("customers").public_key)})
    result = invoke("serve", "customers", env={"CRM_SERVICE_KEYS": public_keys})
    assert result.exit_code == 2
    assert "CRM_CUSTOMERS_SIGNING_KEY: required when CRM_SERVICE_KEYS is set" in result.stderr
