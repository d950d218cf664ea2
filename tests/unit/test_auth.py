"""Tokens: what a service accepts, and everything an attacker might send instead."""

import random

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import auth
from shared.auth import ROLES, Principal, TokenVerifier, allow, issue_token
from shared.errors import Forbidden, Unauthenticated, ValidationError
from tests.forged_tokens import MISSING, claims, hs256, signed, unsigned

ISSUER = Ed25519PrivateKey.generate()
NOW = 1_800_000_000


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(audience: str = "customers", clock=None, **options) -> TokenVerifier:
    return TokenVerifier([ISSUER.public_key()], audience, clock or Clock(), **options)


def token(role: str = "agent", actor: str = "wang.fang", audience=("customers",), ttl: int = 3600) -> str:
    return issue_token(ISSUER, role, actor, list(audience), ttl, now=NOW)


def at_now(**changes) -> dict:
    """Forged claims issued at ``NOW``, good for a minute, with ``changes``."""
    return claims(**{"iat": NOW, "exp": NOW + 60, **changes})


def refused(token_value, match: str, audience: str = "customers") -> None:
    with pytest.raises(Unauthenticated, match=match):
        verifier(audience).verify(token_value)


# -- what is accepted ----------------------------------------------------------------

def test_round_trip_carries_actor_and_role_and_the_claims_a_jwt_needs():
    issued = token("supervisor", audience=("complaints", "customers"))
    assert verifier().verify(issued) == Principal("wang.fang", "supervisor")
    assert verifier("complaints").verify(issued) == Principal("wang.fang", "supervisor")
    header = jwt.get_unverified_header(issued)
    body = jwt.decode(issued, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert body["aud"] == ["complaints", "customers"] and body["sub"] == "wang.fang"
    assert (body["iat"], body["exp"]) == (NOW, NOW + 3600)
    assert isinstance(body["jti"], str) and body["jti"] != jwt.decode(token(), options={"verify_signature": False})["jti"]


def test_people_get_an_hour_by_default():
    body = jwt.decode(issue_token(ISSUER, "agent", "a", ["customers"], now=NOW), options={"verify_signature": False})
    assert body["exp"] - body["iat"] == 3600


def test_during_a_rotation_tokens_of_the_old_and_the_new_key_are_accepted():
    new_issuer = Ed25519PrivateKey.generate()
    rotating = TokenVerifier([new_issuer.public_key(), ISSUER.public_key()], "customers", Clock())
    assert rotating.verify(token()).role == "agent"
    assert rotating.verify(issue_token(new_issuer, "admin", "a", ["customers"], now=NOW)).role == "admin"


# -- what an attacker sends ---------------------------------------------------------------

@pytest.mark.parametrize("token_value, reason", [
    (None, "no token"), ("", "no token"), (42, "malformed"), (b"a.b.c", "malformed"), (["a"], "malformed"),
    ("abc", "malformed"), ("a.b", "malformed"), ("a.b.c", "malformed"), ("....", "malformed"),
    ("张.三.四", "malformed"), ("eyJhbGciOiJFZERTQSJ9.ü.x", "malformed"), ("\x00.\x00.\x00", "malformed"),
])
def test_missing_malformed_and_non_ascii_tokens(token_value, reason):
    refused(token_value, reason)


def test_garbage_of_any_kind_is_unauthenticated_and_nothing_else():
    rng = random.Random(20240601)
    good = token()
    alphabet = "abcXYZ019-_.=+/ü张\x00\n{}\":,"
    for _ in range(2000):
        garbage = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        cut = good[:rng.randrange(len(good))] + rng.choice(alphabet) + good[rng.randrange(len(good)):]
        for candidate in (garbage, cut):
            with pytest.raises(Unauthenticated):
                verifier().verify(candidate)


def test_a_token_signed_with_another_key_is_forged():
    refused(issue_token(Ed25519PrivateKey.generate(), "admin", "mallory", ["customers"], now=NOW), "signature")
    refused(signed(Ed25519PrivateKey.generate(), at_now()), "signature")


def test_claims_swapped_under_a_good_signature_are_forged():
    header, _claims, signature = token("agent").split(".")
    admin_claims = token("admin").split(".")[1]
    refused(f"{header}.{admin_claims}.{signature}", "signature")


def test_alg_none_is_refused():
    refused(unsigned(at_now()), "EdDSA")


@pytest.mark.parametrize("encoding", [serialization.Encoding.Raw, serialization.Encoding.PEM])
def test_hs256_keyed_with_the_public_key_every_service_holds_is_refused(encoding):
    public_format = serialization.PublicFormat.Raw if encoding is serialization.Encoding.Raw \
        else serialization.PublicFormat.SubjectPublicKeyInfo
    public_bytes = ISSUER.public_key().public_bytes(encoding, public_format)
    refused(hs256(public_bytes, at_now()), "EdDSA")


def test_a_token_for_another_service_is_refused():
    refused(token(audience=("complaints",)), "not for the customers service")
    refused(signed(ISSUER, at_now(aud=[])), "malformed")


@pytest.mark.parametrize("expires", [float("nan"), float("inf"), "NaN", "1900000000", 1.9e9, True, None, MISSING,
                                     [1900000000], {"at": 1900000000}])
def test_exp_must_be_a_whole_number_of_seconds(expires):
    refused(signed(ISSUER, at_now(exp=expires)), "malformed")


def test_an_expired_token_is_refused():
    with pytest.raises(Unauthenticated, match="expired"):
        verifier(clock=Clock(NOW + 10)).verify(token(ttl=10))
    assert verifier(clock=Clock(NOW + 9)).verify(token(ttl=10)).role == "agent"


@pytest.mark.parametrize("claim", ["sub", "role", "aud", "iat", "exp", "jti"])
def test_every_claim_is_required(claim):
    refused(signed(ISSUER, at_now(**{claim: MISSING})), "malformed")


@pytest.mark.parametrize("changes, reason", [
    ({"role": "root"}, "unknown role"), ({"role": ["admin"]}, "unknown role"),
    ({"sub": ""}, "malformed"), ({"sub": 7}, "malformed"), ({"sub": "x" * 101}, "malformed"),
    ({"jti": 7}, "malformed"), ({"aud": "customers"}, "malformed"), ({"iat": "now"}, "malformed"),
])
def test_signed_but_senseless_claims_are_refused(changes, reason):
    refused(signed(ISSUER, at_now(**changes)), reason)


# -- the verification cache ------------------------------------------------------------------

@pytest.fixture
def decodes(monkeypatch):
    """How many times a signature was really checked."""
    calls = []
    real = auth.jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    return calls


def test_a_token_is_verified_once_and_remembered_until_it_expires(decodes):
    clock = Clock()
    checking = verifier(clock=clock)
    issued = token(ttl=60)
    first = checking.verify(issued)
    clock.now = NOW + 59
    assert checking.verify(issued) is first
    assert len(decodes) == 1
    clock.now = NOW + 60
    with pytest.raises(Unauthenticated, match="expired"):
        checking.verify(issued)
    with pytest.raises(Unauthenticated, match="expired"):
        checking.verify(issued)


def test_the_cache_is_bounded_and_drops_the_least_recently_used(decodes):
    checking = verifier(cache_size=2)
    first, second, third = (token(actor=f"actor-{n}") for n in range(3))
    for issued in (first, second, first, third):  # third pushes out second, the least recently used
        checking.verify(issued)
    assert len(decodes) == 3
    checking.verify(first)
    assert len(decodes) == 3
    checking.verify(second)
    assert len(decodes) == 4


def test_refusals_are_not_remembered(decodes):
    checking = verifier()
    forged = issue_token(Ed25519PrivateKey.generate(), "admin", "mallory", ["customers"], now=NOW)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            checking.verify(forged)
    assert len(decodes) == 2


# -- issuing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("role, actor, audience, ttl, field", [
    ("king", "a", ["customers"], 60, "role"), ("agent", "", ["customers"], 60, "actor"),
    ("agent", "x" * 101, ["customers"], 60, "actor"), ("agent", "a", [], 60, "audience"),
    ("agent", "a", "customers", 60, "audience"), ("agent", "a", [""], 60, "audience"),
    ("agent", "a", ["customers"], 0, "ttl"), ("agent", "a", ["customers"], 1.5, "ttl"),
])
def test_issuing_validates_each_field(role, actor, audience, ttl, field):
    with pytest.raises(ValidationError) as error:
        issue_token(ISSUER, role, actor, audience, ttl)
    assert field in error.value.fields


# -- the role check -----------------------------------------------------------------------------

class _Service:
    def __init__(self, role):
        self.auth = lambda: verifier().verify(token(role, "someone"))

    @allow("supervisor", "admin")
    def assign(self):
        return self.principal.actor_id


def test_allow_admits_listed_roles_and_forbids_the_rest():
    assert _Service("admin").assign() == "someone"
    for role in set(ROLES) - {"supervisor", "admin"}:
        with pytest.raises(Forbidden, match="allowed: supervisor, admin"):
            _Service(role).assign()
    assert _Service.assign.allowed_roles == ("supervisor", "admin")


def test_allow_refuses_unknown_role_names_at_import_time():
    with pytest.raises(ValueError):
        allow("superuser")
