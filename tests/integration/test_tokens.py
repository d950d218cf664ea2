"""Tokens over the real broker: what an attacker sends to a running service, and what the service holds.

The customers service runs with the issuer's public key only. Each forged
token is sent as a client would send one, and must come back as a
``RemoteError`` of type ``Unauthenticated``.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nameko.containers import ServiceContainer
from nameko.exceptions import RemoteError

from services.complaints.service import ComplaintsService
from services.customers.service import CustomersService
from shared.auth import issue_token
from shared.config import load_settings
from shared.discovery import service_spec
from shared.errors import ValidationError
from shared.service_tokens import issue_service_token
from shared.token_keys import public_keys_text
from tests.forged_tokens import MISSING, claims, hs256, signed, unsigned
from tests.support import ISSUER_KEY, rpc_as, running, service_config, wait_for

PUBLIC_KEY = ISSUER_KEY.public_key()
PEM_PUBLIC_KEY = PUBLIC_KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def customers(tmp_path_factory, amqp_uri):
    data_dir = tmp_path_factory.mktemp("tokens")
    config = service_config(data_dir, amqp_uri, customers=f"sqlite:///{data_dir / 'customers.db'}")
    with running(CustomersService, config):
        yield config


def health_with(config, raw_token):
    with rpc_as(config, None, raw_token=raw_token) as proxy:
        return proxy.customers.health()


def refusal(config, raw_token) -> RemoteError:
    with pytest.raises(RemoteError) as error:
        health_with(config, raw_token)
    return error.value


def test_a_valid_token_for_the_service_is_accepted(customers):
    assert health_with(customers, issue_token(ISSUER_KEY, "auditor", "alice", ["customers"]))["service"] == "customers"
    with rpc_as(customers, "agent") as proxy:
        assert proxy.customers.register(name="张伟", phone="13812345678")["version"] == 1


ATTACKS = {
    "for another service": lambda: issue_token(ISSUER_KEY, "admin", "mallory", ["complaints"]),
    "signed with another key": lambda: issue_token(Ed25519PrivateKey.generate(), "admin", "mallory", ["customers"]),
    "alg none": lambda: unsigned(claims()),
    "HS256 keyed with the raw public key": lambda: hs256(PUBLIC_KEY.public_bytes_raw(), claims()),
    "HS256 keyed with the PEM public key": lambda: hs256(PEM_PUBLIC_KEY, claims()),
    "exp of NaN": lambda: signed(ISSUER_KEY, claims(exp=float("nan"))),
    "exp as text": lambda: signed(ISSUER_KEY, claims(exp="NaN")),
    "no exp": lambda: signed(ISSUER_KEY, claims(exp=MISSING)),
    "no audience": lambda: signed(ISSUER_KEY, claims(aud=MISSING)),
    "unknown role": lambda: signed(ISSUER_KEY, claims(role="root")),
    "expired": lambda: issue_token(ISSUER_KEY, "admin", "old", ["customers"], 60, now=time.time() - 61),
    "non-ASCII garbage": lambda: "张.三.四",
    "garbage": lambda: "not-a-token",
    "not text": lambda: 42,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_forged_or_broken_token_is_unauthenticated(customers, attack):
    error = refusal(customers, ATTACKS[attack]())
    assert error.exc_type == "Unauthenticated", error.value


def test_the_refusal_says_what_is_wrong(customers):
    assert "not for the customers service" in refusal(customers, ATTACKS["for another service"]()).value
    assert "expired" in refusal(customers, ATTACKS["expired"]()).value
    assert "EdDSA" in refusal(customers, ATTACKS["alg none"]()).value


def test_nothing_a_service_holds_can_mint_a_token_it_accepts(customers):
    settings = load_settings(customers, environ={})
    assert settings.token_private_key is None and "CRM_TOKEN_PRIVATE_KEY" not in customers
    own = customers["CRM_SERVICE_TOKEN"]
    header, _claims, signature = own.split(".")
    admin_claims = signed(ISSUER_KEY, claims()).split(".")[1]
    attempts = [
        signed(Ed25519PrivateKey.from_private_bytes(settings.master_key), claims()),
        hs256(settings.master_key, claims()),
        hs256(public_keys_text(settings.token_public_keys).encode(), claims()),
        hs256(own.encode(), claims()),
        f"{header}.{admin_claims}.{signature}",  # its own token's signature over admin claims
    ]
    for attempt in attempts:
        assert refusal(customers, attempt).exc_type == "Unauthenticated"


def test_a_service_token_acts_as_a_service_and_no_more(customers):
    own = customers["CRM_SERVICE_TOKEN"]
    with rpc_as(customers, None, raw_token=own) as proxy:
        assert isinstance(proxy.customers.events_since(0, 10), list)
        with pytest.raises(RemoteError) as forbidden:
            proxy.customers.erase("anyone", "not allowed")
    assert forbidden.value.exc_type == "Forbidden"


def test_a_service_refuses_to_start_with_the_issuers_private_key(tmp_path, amqp_uri):
    private_key = ISSUER_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
    config = {**service_config(tmp_path, amqp_uri), "CRM_TOKEN_PRIVATE_KEY": private_key}
    with pytest.raises(ValidationError) as error:
        ServiceContainer(CustomersService, config).start()
    assert "CRM_TOKEN_PRIVATE_KEY" in error.value.fields


def test_a_follower_without_a_service_token_refuses_to_start_naming_the_setting(tmp_path, amqp_uri):
    config = {key: value for key, value in service_config(tmp_path, amqp_uri).items() if key != "CRM_SERVICE_TOKEN"}
    with pytest.raises(ValidationError) as error:
        ServiceContainer(ComplaintsService, config).start()
    assert "--audience customers" in error.value.fields["CRM_SERVICE_TOKEN"][0]


def test_a_follower_pulls_missed_events_with_its_own_service_token(tmp_path, amqp_uri):
    config = service_config(tmp_path, amqp_uri, customers=f"sqlite:///{tmp_path / 'customers.db'}",
                            complaints=f"sqlite:///{tmp_path / 'complaints.db'}")
    complaints_config = {**config, "CRM_SERVICE_TOKEN": issue_service_token(ISSUER_KEY, service_spec("complaints")),
                         "COMPLAINTS": {"sla_timer_seconds": 3600}}
    with running(CustomersService, config):
        with rpc_as(config, "agent") as proxy:
            proxy.customers.register(name="李娜", phone="13900000000")  # before complaints listens
            head = proxy.customers.health()["log_position"]
        with running(ComplaintsService, complaints_config), rpc_as(config, "admin") as proxy:
            directory = lambda: proxy.complaints.health()["projections"]["complaints.customers"]  # noqa: E731
            wait_for(lambda: directory()["positions"]["customers"] >= head, what="the missed events to be pulled")
