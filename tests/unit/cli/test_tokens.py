"""``crm token``, and the configuration errors every command reports the same way."""

from __future__ import annotations

import base64
import json
import stat
import time

import pytest

from shared.auth import Principal, verify_token
from shared.config import load_settings
from shared.errors import Unauthenticated
from tests.unit.cli import MASTER_KEY, SECRET


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
