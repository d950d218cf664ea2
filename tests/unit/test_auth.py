"""Signed tokens: what is accepted and why everything else is refused."""

import pytest

from shared.auth import ROLES, allow, issue_token, verify_token
from shared.errors import Forbidden, Unauthenticated, ValidationError

SECRET = b"s" * 32


def test_round_trip_carries_actor_and_role():
    principal = verify_token(SECRET, issue_token(SECRET, "supervisor", "wang.fang"))
    assert (principal.actor_id, principal.role) == ("wang.fang", "supervisor")


@pytest.mark.parametrize("token, reason", [
    (None, "no token"), ("", "no token"), ("abc", "malformed"), (42, "malformed"),
    ("a.b", "signature"),
])
def test_missing_or_malformed_tokens(token, reason):
    with pytest.raises(Unauthenticated, match=reason):
        verify_token(SECRET, token)


def test_forged_expired_and_tampered_tokens():
    with pytest.raises(Unauthenticated, match="signature"):
        verify_token(SECRET, issue_token(b"x" * 32, "admin", "mallory"))
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(SECRET, issue_token(SECRET, "admin", "old", ttl_seconds=10, now=1000), now=1011)
    claims, signature = issue_token(SECRET, "agent", "bob").split(".")
    admin_claims = issue_token(SECRET, "admin", "bob").split(".")[0]
    with pytest.raises(Unauthenticated, match="signature"):
        verify_token(SECRET, f"{admin_claims}.{signature}")


@pytest.mark.parametrize("role, actor, ttl, field", [("king", "a", 60, "role"), ("agent", "", 60, "actor"),
                                                      ("agent", "a", 0, "ttl")])
def test_issuing_validates_each_field(role, actor, ttl, field):
    with pytest.raises(ValidationError) as error:
        issue_token(SECRET, role, actor, ttl)
    assert field in error.value.fields


class _Service:
    def __init__(self, role):
        self.auth = lambda: verify_token(SECRET, issue_token(SECRET, role, "someone"))

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
