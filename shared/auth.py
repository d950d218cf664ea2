"""Signed bearer tokens and the role check on every RPC method.

A token is ``base64url(claims).base64url(HMAC-SHA256(secret, claims))`` with
claims ``{sub, role, iat, exp}``. It travels in the nameko context data key
``authorization`` (AMQP header ``nameko.authorization``). Each entrypoint
declares its roles with ``@allow(...)``; the check runs inside the method, so
a refusal reaches the caller as ``Unauthenticated`` or ``Forbidden``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from nameko.extensions import DependencyProvider

from shared.errors import Forbidden, Unauthenticated, ValidationError

ROLES = ("agent", "supervisor", "operator", "auditor", "service", "admin")
CONTEXT_KEY = "authorization"
DEFAULT_TTL_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Principal:
    actor_id: str
    role: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(secret: bytes, role: str, actor_id: str, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                now: float | None = None) -> str:
    if role not in ROLES:
        raise ValidationError({"role": [f"must be one of {', '.join(ROLES)}"]})
    if not actor_id or len(actor_id) > 100:
        raise ValidationError({"actor": ["must be 1 to 100 characters"]})
    if ttl_seconds <= 0:
        raise ValidationError({"ttl": ["must be positive"]})
    issued = int(now if now is not None else time.time())
    claims = _b64(json.dumps({"sub": actor_id, "role": role, "iat": issued,
                              "exp": issued + ttl_seconds}, separators=(",", ":")).encode())
    return f"{claims}.{_sign(secret, claims)}"


def verify_token(secret: bytes, token: Any, now: float | None = None) -> Principal:
    """The principal of a valid token; ``Unauthenticated`` says what is wrong otherwise."""
    if not token:
        raise Unauthenticated("no token: pass one in the context data key 'authorization' (crm token)")
    if not isinstance(token, str) or token.count(".") != 1:
        raise Unauthenticated("malformed token")
    claims_text, signature = token.split(".")
    if not hmac.compare_digest(_sign(secret, claims_text), signature):
        raise Unauthenticated("token signature is invalid")
    try:
        claims = json.loads(_unb64(claims_text))
        actor_id, role, expires = str(claims["sub"]), claims["role"], float(claims["exp"])
    except (ValueError, KeyError, TypeError) as error:
        raise Unauthenticated("malformed token claims") from error
    if expires <= (now if now is not None else time.time()):
        raise Unauthenticated("token has expired: issue a new one")
    if role not in ROLES:
        raise Unauthenticated(f"token names unknown role {role!r}")
    return Principal(actor_id, role)


def _sign(secret: bytes, claims_text: str) -> str:
    return _b64(hmac.new(secret, claims_text.encode(), hashlib.sha256).digest())


class Authorization(DependencyProvider):
    """Hands each worker a callable that authenticates the worker's caller."""

    def setup(self) -> None:
        from shared.config import load_settings

        self.secret = load_settings(self.container.config).secret

    def get_dependency(self, worker_ctx) -> Callable[[], Principal]:
        return lambda: verify_token(self.secret, worker_ctx.data.get(CONTEXT_KEY))


def allow(*roles: str) -> Callable:
    """Let only ``roles`` call the method; the caller is ``self.principal`` inside it.

    The service must have an ``Authorization`` dependency named ``auth``.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            principal = self.auth()
            if principal.role not in roles:
                raise Forbidden(f"role {principal.role!r} may not call {method.__name__}; "
                                f"allowed: {', '.join(roles)}")
            self.principal = principal
            return method(self, *args, **kwargs)

        guarded.allowed_roles = roles  # type: ignore[attr-defined]
        return guarded

    return decorate
