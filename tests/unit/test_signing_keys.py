"""Signing settings: each service's private key, everyone's public keys, development keys in the data dir."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.config import load_settings
from shared.errors import ValidationError
from shared.ed25519_text import new_private_key_text, private_key_from_text, public_key_text
from shared.signing import EventSigner
from shared.signing_keys import SERVICE_KEYS, dev_signing_key

SECRETS = {"CRM_MASTER_KEY": base64.b64encode(b"m" * 32).decode()}
CUSTOMERS_KEY, COMPLAINTS_KEY, OLD_CUSTOMERS_KEY = (new_private_key_text() for _ in range(3))


def public(private_text: str) -> str:
    return public_key_text(private_key_from_text(private_text).public_key())


def signing(tmp_path, environ=None, **config):
    return load_settings({"CRM_DATA_DIR": str(tmp_path), **SECRETS, **config}, environ=environ or {}).signing


def production(tmp_path, **config):
    keys = {"customers": [public(CUSTOMERS_KEY), public(OLD_CUSTOMERS_KEY)], "complaints": public(COMPLAINTS_KEY)}
    return signing(tmp_path, environ={SERVICE_KEYS: json.dumps(keys)}, **config)


def test_development_keys_are_generated_once_into_the_data_dir_readable_by_the_owner_only(tmp_path):
    first = signing(tmp_path).signer("customers")
    again = signing(tmp_path).signer("customers")
    assert public_key_text(first.public_key) == public_key_text(again.public_key)
    key_file = tmp_path / "signing" / "customers.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    published = signing(tmp_path).public_texts()
    assert set(published) >= {"customers", "complaints"}  # every installed service's, for the others to check
    assert published["customers"] == (public_key_text(first.public_key),)
    assert sorted(path.name for path in key_file.parent.iterdir()) == sorted(f"{name}.key" for name in published)


def test_a_development_key_made_first_by_another_process_is_the_one_used(tmp_path):
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "customers.key").write_text(CUSTOMERS_KEY + "\n")
    assert dev_signing_key(tmp_path, "customers") == CUSTOMERS_KEY
    assert [path.name for path in (tmp_path / "signing").iterdir()] == ["customers.key"]  # no temporary left


def test_an_unusable_development_key_names_the_setting_and_the_file(tmp_path):
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "customers.key").write_text("garbage")
    with pytest.raises(ValidationError) as error:
        signing(tmp_path).signer("customers")
    assert "customers.key" in error.value.fields["CRM_CUSTOMERS_SIGNING_KEY"][0]


def test_configured_keys_sign_and_check_without_touching_the_data_dir(tmp_path):
    keys = production(tmp_path, CRM_CUSTOMERS_SIGNING_KEY=CUSTOMERS_KEY)
    signer = keys.signer("customers")
    accepted = keys.service_keys()
    assert accepted.signed_by("customers", "ab" * 32, signer.sign("ab" * 32))
    old = EventSigner("customers", private_key_from_text(OLD_CUSTOMERS_KEY))
    assert accepted.signed_by("customers", "ab" * 32, old.sign("ab" * 32))  # a rotated-out key still counts
    assert not (tmp_path / "signing").exists()


def test_a_public_key_listed_as_pem_matches_its_private_key_given_raw(tmp_path):
    pem = private_key_from_text(CUSTOMERS_KEY).public_key().public_bytes(Encoding.PEM,
                                                                          PublicFormat.SubjectPublicKeyInfo)
    keys = signing(tmp_path, environ={SERVICE_KEYS: json.dumps({"customers": pem.decode()})},
                   CRM_CUSTOMERS_SIGNING_KEY=CUSTOMERS_KEY)
    assert public_key_text(keys.signer("customers").public_key) == public(CUSTOMERS_KEY)


def test_with_public_keys_configured_a_service_must_have_its_own_private_key(tmp_path):
    with pytest.raises(ValidationError) as error:
        production(tmp_path, CRM_CUSTOMERS_SIGNING_KEY=CUSTOMERS_KEY).signer("complaints")
    assert "required when CRM_SERVICE_KEYS is set" in error.value.fields["CRM_COMPLAINTS_SIGNING_KEY"][0]


def test_a_private_key_whose_public_key_is_not_listed_is_refused(tmp_path):
    with pytest.raises(ValidationError) as error:
        production(tmp_path, CRM_CUSTOMERS_SIGNING_KEY=COMPLAINTS_KEY).signer("customers")
    assert "not listed for customers in CRM_SERVICE_KEYS" in error.value.fields["CRM_CUSTOMERS_SIGNING_KEY"][0]


@pytest.mark.parametrize("settings, field, message", [
    ({"CRM_CUSTOMERS_SIGNING_KEY": "c2hvcnQ="}, "CRM_CUSTOMERS_SIGNING_KEY", "raw 32 bytes in base64"),
    ({SERVICE_KEYS: "{not json"}, SERVICE_KEYS, "not valid JSON"),
    ({SERVICE_KEYS: ["customers"]}, SERVICE_KEYS, "must map each service"),
    ({SERVICE_KEYS: {"Customers!": "x"}}, SERVICE_KEYS, "'Customers!' is not a service name"),
    ({SERVICE_KEYS: {"customers": []}}, SERVICE_KEYS, "customers: give a public key"),
    ({SERVICE_KEYS: {"customers": "c2hvcnQ="}}, SERVICE_KEYS, "customers: must be an Ed25519 public key"),
])
def test_bad_signing_settings_name_the_setting(tmp_path, settings, field, message):
    with pytest.raises(ValidationError) as error:
        signing(tmp_path, **settings)
    assert any(message in text for text in error.value.fields[field]), error.value.fields


def test_a_service_config_carries_its_own_private_key_and_everyones_public_keys(tmp_path):
    keys = production(tmp_path, CRM_CUSTOMERS_SIGNING_KEY=CUSTOMERS_KEY, CRM_COMPLAINTS_SIGNING_KEY=COMPLAINTS_KEY)
    config = keys.nameko_config("complaints")
    assert config == {SERVICE_KEYS: {"customers": [public(CUSTOMERS_KEY), public(OLD_CUSTOMERS_KEY)],
                                     "complaints": [public(COMPLAINTS_KEY)]},
                      "CRM_COMPLAINTS_SIGNING_KEY": COMPLAINTS_KEY}
    reloaded = signing(tmp_path / "elsewhere", **config)
    assert public_key_text(reloaded.signer("complaints").public_key) == public(COMPLAINTS_KEY)
