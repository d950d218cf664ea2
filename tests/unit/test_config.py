"""Settings: precedence, env substitution, validation, the token keys and generated dev secrets."""

import base64
import json
import os
import stat
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.config import expand_env, load_settings, read_config_file
from shared.errors import ValidationError
from shared.token_keys import public_keys_text

KEY = base64.b64encode(b"k" * 32).decode()
ISSUER = Ed25519PrivateKey.generate()
PRIVATE_KEY = base64.b64encode(ISSUER.private_bytes_raw()).decode()
PUBLIC_KEY = public_keys_text((ISSUER.public_key(),))


def test_config_wins_over_env_and_urls_default_to_sqlite_in_the_data_dir(tmp_path):
    settings = load_settings({"AMQP_URI": "amqp://a:b@broker:5672/", "CRM_DATA_DIR": str(tmp_path)},
                             environ={"AMQP_URI": "amqp://ignored/", "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": KEY,
                                      "CRM_COMPLAINTS_DATABASE_URL": "postgresql://db/complaints",
                                      "CRM_PROBE_DATABASE_URL": "postgresql://db/probe"})
    assert settings.amqp_uri == "amqp://a:b@broker:5672/"
    assert settings.database_url("customers") == f"sqlite:///{tmp_path / 'customers.db'}"
    assert settings.database_url("complaints") == "postgresql://db/complaints"
    assert settings.database_url("probe") == f"sqlite:///{tmp_path / 'probe.db'}"  # not installed: not read
    assert settings.master_key == b"k" * 32


def test_dev_secrets_are_generated_once_with_private_permissions(tmp_path):
    issuer = load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={}, issuer=True)
    service = load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={})
    assert issuer.master_key == service.master_key and len(issuer.master_key) == 32
    assert issuer.token_public_keys == service.token_public_keys == (issuer.token_private_key.public_key(),)
    assert service.token_private_key is None  # the file holds it, but only the issuer reads it
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert [entry.name for entry in tmp_path.iterdir()] == ["secrets.json"]  # no temporary file left


def test_commands_starting_together_share_one_set_of_dev_secrets(tmp_path):
    start = threading.Barrier(8)
    seen = []

    def load():
        start.wait()
        seen.append(load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={}, issuer=True))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8
    assert len({settings.master_key for settings in seen}) == 1
    assert len({public_keys_text(settings.token_public_keys) for settings in seen}) == 1
    assert len({settings.token_private_key.private_bytes_raw() for settings in seen}) == 1


def test_dev_secrets_of_an_older_version_keep_their_master_key_and_get_token_keys(tmp_path):
    (tmp_path / "secrets.json").write_text(json.dumps({"master_key": KEY}))
    settings = load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={}, issuer=True)
    assert settings.master_key == b"k" * 32 and settings.token_private_key is not None
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("key", [PUBLIC_KEY, ISSUER.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()])
def test_the_public_key_is_pem_or_base64_raw_bytes(tmp_path, key):
    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY, "CRM_TOKEN_PUBLIC_KEY": key},
                             environ={})
    assert settings.token_public_keys == (ISSUER.public_key(),)
    assert not (tmp_path / "secrets.json").exists()


def test_the_public_key_setting_takes_the_keys_of_a_rotation(tmp_path):
    new = Ed25519PrivateKey.generate()
    both = f"{public_keys_text((new.public_key(),))}, {PUBLIC_KEY}"
    pem = "\n".join(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
                    for key in (new, ISSUER))
    for text in (both, pem):
        settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY, "CRM_TOKEN_PUBLIC_KEY": text},
                                 environ={})
        assert settings.token_public_keys == (new.public_key(), ISSUER.public_key())
    pem_private = new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    issuer = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY, "CRM_TOKEN_PUBLIC_KEY": both,
                            "CRM_TOKEN_PRIVATE_KEY": pem_private}, environ={}, issuer=True)
    assert issuer.token_private_key.public_key() == new.public_key()


def test_the_issuer_derives_the_public_key_from_its_private_key(tmp_path):
    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY}, issuer=True,
                             environ={"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY})
    assert settings.token_public_keys == (ISSUER.public_key(),)
    assert settings.nameko_config()["CRM_TOKEN_PUBLIC_KEY"] == PUBLIC_KEY
    assert "CRM_TOKEN_PRIVATE_KEY" not in settings.nameko_config()


@pytest.mark.parametrize("where", ["config", "environ"])
def test_a_service_refuses_the_issuers_private_key(tmp_path, where):
    given = {"CRM_TOKEN_PRIVATE_KEY": PRIVATE_KEY}
    with pytest.raises(ValidationError) as error:
        load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY, **(given if where == "config" else {})},
                      environ=given if where == "environ" else {})
    assert "only the token issuer" in error.value.fields["CRM_TOKEN_PRIVATE_KEY"][0]


@pytest.mark.parametrize("bad, field", [
    ({"AMQP_URI": "http://broker"}, "AMQP_URI"),
    ({"CRM_MASTER_KEY": "too-short"}, "CRM_MASTER_KEY"),
    ({"CRM_CUSTOMERS_DATABASE_URL": "mysql://db"}, "CRM_DATABASE_URLS"),
    ({"CRM_TOKEN_PUBLIC_KEY": "c2hvcnQ="}, "CRM_TOKEN_PUBLIC_KEY"),
    ({"CRM_TOKEN_PUBLIC_KEY": f"{PUBLIC_KEY},not-a-key"}, "CRM_TOKEN_PUBLIC_KEY"),
    ({"CRM_TOKEN_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}, "CRM_TOKEN_PUBLIC_KEY"),
    ({"CRM_TOKEN_PRIVATE_KEY": "c2hvcnQ="}, "CRM_TOKEN_PRIVATE_KEY"),
    ({"CRM_TOKEN_PRIVATE_KEY": base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()},
     "CRM_TOKEN_PRIVATE_KEY"),  # not the private key of the public key
    ({"CRM_SERVICE_TOKEN": "not a token"}, "CRM_SERVICE_TOKEN"),
])
def test_bad_settings_name_the_field(tmp_path, bad, field):
    with pytest.raises(ValidationError) as error:
        load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_MASTER_KEY": KEY, "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY,
                       **bad}, environ={}, issuer=True)
    assert field in error.value.fields


def test_yaml_config_substitutes_env_with_defaults(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("AMQP_URI: ${BROKER:amqp://guest:guest@localhost/}\nCRM_DATA_DIR: ${DATA}\n")
    assert expand_env("${X:fallback}-${Y}", {"Y": "set"}) == "fallback-set"
    os.environ["DATA"] = str(tmp_path)
    try:
        assert read_config_file(path) == {"AMQP_URI": "amqp://guest:guest@localhost/", "CRM_DATA_DIR": str(tmp_path)}
    finally:
        del os.environ["DATA"]


def test_unreadable_or_non_mapping_config_is_a_validation_error(tmp_path):
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    with pytest.raises(ValidationError, match="mapping"):
        read_config_file(tmp_path / "list.yml")
    with pytest.raises(ValidationError, match="cannot read"):
        read_config_file(tmp_path / "missing.yml")


def test_an_owner_url_is_kept_apart_from_the_service_url(tmp_path):
    settings = load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": KEY,
                              "CRM_CUSTOMERS_DATABASE_URL": "postgresql://crm_customers:pw@db/customers",
                              "CRM_CUSTOMERS_OWNER_DATABASE_URL": "postgresql://crm_owner:pw@db:5432/customers"},
                             environ={})
    assert settings.database_url("customers") == "postgresql://crm_customers:pw@db/customers"
    assert settings.owner_database_url("customers") == "postgresql://crm_owner:pw@db:5432/customers"
    assert settings.owner_database_url("complaints") is None
    assert "CRM_CUSTOMERS_OWNER_DATABASE_URL" not in settings.nameko_config()  # services never get it


@pytest.mark.parametrize("service_url, owner_url, problem", [
    ("postgresql://crm_customers@db/customers", "sqlite:///owner.db", "must be a postgresql:// URL"),
    (None, "postgresql://crm_owner@db/customers", "same PostgreSQL database as CRM_CUSTOMERS_DATABASE_URL"),
    ("postgresql://crm_customers@db/customers", "postgresql://crm_owner@db/complaints", "same PostgreSQL database"),
    ("postgresql://crm_customers@db/customers", "postgresql://crm_owner@other/customers", "same PostgreSQL database"),
    ("postgresql://crm_customers@db/customers", "postgresql://crm_owner@db:5433/customers", "same PostgreSQL"),
    ("postgresql://db/customers", "postgresql://crm_owner@db/customers", "needs the service's role named"),
])
def test_an_owner_url_that_does_not_fit_its_service_url_names_the_field(tmp_path, service_url, owner_url, problem):
    config = {"CRM_DATA_DIR": str(tmp_path), "CRM_TOKEN_PUBLIC_KEY": PUBLIC_KEY, "CRM_MASTER_KEY": KEY,
              "CRM_CUSTOMERS_OWNER_DATABASE_URL": owner_url}
    if service_url is not None:
        config["CRM_CUSTOMERS_DATABASE_URL"] = service_url
    with pytest.raises(ValidationError) as error:
        load_settings(config, environ={})
    [message] = error.value.fields["CRM_CUSTOMERS_OWNER_DATABASE_URL"]
    assert problem in message
