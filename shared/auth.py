"""Signed bearer tokens and the role check on every RPC method.

A token is a JWT signed with EdDSA (Ed25519). Only the issuer, the ``crm``
command, holds the private key; services hold the public key and can only
verify, so no service can mint a token, least of all an admin one. Claims:
``sub`` (the actor), ``role``, ``aud`` (the services it may call), ``iat``,
``exp`` (whole seconds) and ``jti``. A token travels in the nameko context
data key ``authorization`` (AMQP header ``nameko.authorization``). Each
entrypoint declares its roles with ``@allow(...)``; the check runs inside
the method, so a refusal reaches the caller as ``Unauthenticated`` or
``Forbidden``.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nameko.extensions import DependencyProvider

from shared.errors import Forbidden, Unauthenticated, ValidationError

ROLES = ("agent", "supervisor", "operator", "auditor", "service", "admin")
CONTEXT_KEY = "authorization"
ALGORITHM = "EdDSA"
DEFAULT_TTL_SECONDS = 3600  # a person's token
MAX_ACTOR_LENGTH = 100
VERIFIED_CACHE_SIZE = 4096
_CLAIMS = ("sub", "role", "aud", "iat", "exp", "jti")


@dataclass(frozen=True)
class Principal:
    actor_id: str
    role: str


def issue_token(private_key: Ed25519PrivateKey, role: str, actor_id: str, audience: Sequence[str],
                ttl_seconds: int = DEFAULT_TTL_SECONDS, now: float | None = None) -> str:
    """A token for ``actor_id`` acting as ``role``, good for the services in ``audience``."""
    problems: dict[str, list[str]] = {}
    if role not in ROLES:
        problems["role"] = [f"must be one of {', '.join(ROLES)}"]
    if not isinstance(actor_id, str) or not 1 <= len(actor_id) <= MAX_ACTOR_LENGTH:
        problems["actor"] = [f"must be 1 to {MAX_ACTOR_LENGTH} characters"]
    if isinstance(audience, str) or not audience or not all(isinstance(name, str) and name for name in audience):
        problems["audience"] = ["must name at least one service"]
    if type(ttl_seconds) is not int or ttl_seconds <= 0:
        problems["ttl"] = ["must be a positive number of seconds"]
    if problems:
        raise ValidationError(problems)
    issued = int(time.time() if now is None else now)
    claims = {"sub": actor_id, "role": role, "aud": sorted(set(audience)), "iat": issued,
              "exp": issued + ttl_seconds, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


class TokenVerifier:
    """Checks the tokens sent to one service against the issuer's public keys.

    A caller sends the same token with every call, and an Ed25519 verify
    costs about 62 µs, so each good token is verified once and remembered
    until it expires: at most ``cache_size`` of them, the least recently
    used dropped first. ``clock`` gives the time in seconds (tests pass
    their own). Anything else than a good token for ``audience`` is
    ``Unauthenticated``, with what is wrong.
    """

    def __init__(self, public_keys: Iterable[Ed25519PublicKey], audience: str,
                 clock: Callable[[], float] = time.time, cache_size: int = VERIFIED_CACHE_SIZE):
        self._public_keys = tuple(public_keys)
        self._audience = audience
        self._clock = clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: Any) -> Principal:
        now = self._clock()
        if isinstance(token, str):
            with self._lock:
                cached = self._verified.pop(token, None)
                if cached is not None and cached[1] > now:
                    self._verified[token] = cached  # now the most recently used
                    return cached[0]
        principal, expires = self._check(token, now)
        with self._lock:
            self._verified[token] = (principal, expires)
            while len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return principal

    def _check(self, token: Any, now: float) -> tuple[Principal, int]:
        if not token:
            raise Unauthenticated("no token: pass one in the context data key 'authorization' (crm token)")
        if not isinstance(token, str) or not token.isascii():
            raise Unauthenticated("malformed token: a token is ASCII text (crm token)")
        claims = self._decode(token)
        expires, issued = claims["exp"], claims["iat"]
        if type(expires) is not int or type(issued) is not int:
            raise Unauthenticated("malformed token: 'exp' and 'iat' must be whole seconds")
        if expires <= now:
            raise Unauthenticated("token has expired: issue a new one (crm token)")
        actor, role = claims["sub"], claims["role"]  # PyJWT made sure 'sub' and 'jti' are strings
        if not 1 <= len(actor) <= MAX_ACTOR_LENGTH:
            raise Unauthenticated(f"malformed token: 'sub' must be 1 to {MAX_ACTOR_LENGTH} characters")
        if role not in ROLES:
            raise Unauthenticated(f"token names unknown role {role!r}")
        return Principal(actor, role), expires

    def _decode(self, token: str) -> dict[str, Any]:
        """The claims of a token one of the keys signed for this audience, with every claim present."""
        options = {"require": list(_CLAIMS), "verify_exp": False, "verify_iat": False}  # times: _check's clock
        for key in self._public_keys:
            try:
                claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self._audience, options=options)
            except jwt.InvalidSignatureError:
                continue  # perhaps the other key of a rotation
            except jwt.InvalidAlgorithmError as error:
                raise Unauthenticated(f"token must be signed with {ALGORITHM}") from error
            except jwt.InvalidAudienceError as error:
                raise Unauthenticated(f"token is not for the {self._audience} service: "
                                      f"ask for one with --audience {self._audience}") from error
            except jwt.MissingRequiredClaimError as error:
                raise Unauthenticated(f"malformed token: no {error.claim!r} claim") from error
            except (jwt.PyJWTError, ValueError, TypeError) as error:  # hostile input PyJWT could not parse
                raise Unauthenticated(f"malformed token: {error}") from error
            if not isinstance(claims["aud"], list):
                raise Unauthenticated("malformed token: 'aud' must list services")
            return claims
        raise Unauthenticated("token signature is invalid: it was not signed by the token issuer")


class Authorization(DependencyProvider):
    """Hands each worker a callable that authenticates the worker's caller for this service."""

    def setup(self) -> None:
        from shared.config import load_settings

        settings = load_settings(self.container.config)
        self.verifier = TokenVerifier(settings.token_public_keys, self.container.service_name)

    def get_dependency(self, worker_ctx) -> Callable[[], Principal]:
        return lambda: self.verifier.verify(worker_ctx.data.get(CONTEXT_KEY))


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
