"""``crm token``, and the configuration errors every command reports the same way."""

from __future__ import annotations

import json
import stat
import time

import jwt
import pytest

from shared.auth import Principal, TokenVerifier
from shared.config import load_settings
from shared.discovery import installed_services
from shared.errors import Unauthenticated
from tests.unit.cli import ISSUER_KEY, MASTER_KEY, PRIVATE_KEY, PUBLIC_KEY

ISSUER_ENV = {"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY, "CRM_MASTER_KEY": MASTER_KEY}


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_token_is_signed_with_the_configured_private_key_for_every_service(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice", env=ISSUER_ENV)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    for service in installed_services():
        assert TokenVerifier([ISSUER_KEY.public_key()], service).verify(token) == Principal("alice", "agent")
    assert claims_of(token)["aud"] == sorted(installed_services())


def test_token_audience_names_the_services_it_may_call(invoke):
    result = invoke("--json", "token", "--role", "agent", "--actor", "alice", "--audience", "customers", env=ISSUER_ENV)
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert issued["audience"] == ["customers"] == claims_of(issued["token"])["aud"]
    with pytest.raises(Unauthenticated, match="not for the complaints service"):
        TokenVerifier([ISSUER_KEY.public_key()], "complaints").verify(issued["token"])


def test_unknown_audience_exits_2_naming_the_option(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice", "--audience", "nosuch", env=ISSUER_ENV)
    assert result.exit_code == 2
    assert "--audience: unknown service 'nosuch'" in result.stderr


def test_token_without_keys_uses_the_generated_dev_key(invoke, tmp_path):
    result = invoke("token", "--role", "supervisor", "--actor", "bob")
    assert result.exit_code == 0, result.output
    service = load_settings(environ={"CRM_DATA_DIR": str(tmp_path / "data")})
    verifier = TokenVerifier(service.token_public_keys, "customers")
    assert verifier.verify(result.stdout.strip()) == Principal("bob", "supervisor")
    secrets_file = tmp_path / "data" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_with_only_the_public_key_no_token_can_be_signed(invoke):
    result = invoke("token", "--role", "admin", "--actor", "mallory",
                    env={"CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": MASTER_KEY})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "CRM_TOKEN_PRIVATE_KEY is not set" in result.stderr


def test_token_ttl_sets_the_expiry(invoke):
    result = invoke("--json", "token", "--role", "auditor", "--actor", "carol", "--ttl", "60", env=ISSUER_ENV)
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert (issued["role"], issued["actor"]) == ("auditor", "carol")
    soon = TokenVerifier([ISSUER_KEY.public_key()], "customers", clock=lambda: time.time() + 50)
    assert soon.verify(issued["token"]).role == "auditor"
    later = TokenVerifier([ISSUER_KEY.public_key()], "customers", clock=lambda: time.time() + 61)
    with pytest.raises(Unauthenticated, match="expired"):
        later.verify(issued["token"])


def test_bad_role_exits_2_naming_the_option(invoke):
    result = invoke("token", "--role", "boss", "--actor", "alice")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--role: must be one of agent, supervisor, operator, auditor, service, admin" in result.stderr


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_non_positive_ttl_exits_2_naming_the_option(invoke, ttl):
    result = invoke("token", "--role", "agent", "--actor", "alice", "--ttl", ttl)
    assert result.exit_code == 2
    assert "--ttl: must be a positive number of seconds" in result.stderr


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
    config.write_text("AMQP_URI: ftp://nowhere\nCRM_MASTER_KEY: short\n"
                      "CRM_SERVICE_TOKEN: ${NOT_SET_ANYWHERE:x}\n")
    result = invoke("--config", str(config), "token", "--role", "agent", "--actor", "alice")
    assert result.exit_code == 2
    assert "AMQP_URI:" in result.stderr
    assert "CRM_SERVICE_TOKEN:" in result.stderr  # not a token after substitution


def test_bad_master_key_is_named(invoke):
    result = invoke("token", "--role", "agent", "--actor", "alice",
                    env={"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY, "CRM_MASTER_KEY": "c2hvcnQ="})
    assert result.exit_code == 2
    assert "CRM_MASTER_KEY: must be 32 bytes, base64-encoded" in result.stderr
