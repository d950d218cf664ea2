"""Settings: precedence, env substitution, validation and generated dev secrets."""

import base64
import os
import stat

import pytest

from shared.config import expand_env, load_settings, read_config_file
from shared.errors import ValidationError

KEY = base64.b64encode(b"k" * 32).decode()


def test_config_wins_over_env_and_urls_default_to_sqlite_in_the_data_dir(tmp_path):
    settings = load_settings({"AMQP_URI": "amqp://a:b@broker:5672/", "CRM_DATA_DIR": str(tmp_path)},
                             environ={"AMQP_URI": "amqp://ignored/", "CRM_SECRET": KEY, "CRM_MASTER_KEY": KEY,
                                      "CRM_COMPLAINTS_DATABASE_URL": "postgresql://db/complaints",
                                      "CRM_AUDIT_DATABASE_URL": "postgresql://db/audit"})
    assert settings.amqp_uri == "amqp://a:b@broker:5672/"
    assert settings.database_url("customers") == f"sqlite:///{tmp_path / 'customers.db'}"
    assert settings.database_url("complaints") == "postgresql://db/complaints"
    assert settings.database_url("audit") == f"sqlite:///{tmp_path / 'audit.db'}"  # not installed: not read
    assert settings.master_key == b"k" * 32


def test_dev_secrets_are_generated_once_with_private_permissions(tmp_path):
    first = load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={})
    second = load_settings({"CRM_DATA_DIR": str(tmp_path)}, environ={})
    assert first.secret == second.secret and len(first.master_key) == 32
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("bad, field", [
    ({"AMQP_URI": "http://broker"}, "AMQP_URI"),
    ({"CRM_MASTER_KEY": "too-short"}, "CRM_MASTER_KEY"),
    ({"CRM_CUSTOMERS_DATABASE_URL": "mysql://db"}, "CRM_DATABASE_URLS"),
])
def test_bad_settings_name_the_field(tmp_path, bad, field):
    with pytest.raises(ValidationError) as error:
        load_settings({"CRM_DATA_DIR": str(tmp_path), "CRM_SECRET": KEY, "CRM_MASTER_KEY": KEY, **bad}, environ={})
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
