"""Tokens an attacker would send, put together by hand so that nothing checks them on the way.

Claims go through ``json.dumps`` as given, so a test can sign an ``exp`` of
NaN, a missing claim or a string where a number belongs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MISSING = object()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(audience: str = "customers", **changes: Any) -> dict[str, Any]:
    """Well-formed admin claims for ``audience``, with ``changes``; a change to ``MISSING`` drops the claim."""
    now = int(time.time())
    good = {"sub": "mallory", "role": "admin", "aud": [audience], "iat": now, "exp": now + 3600,
            "jti": uuid.uuid4().hex}
    return {name: value for name, value in {**good, **changes}.items() if value is not MISSING}


def compact(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """``header.payload.signature`` with the signature ``sign`` gives over the first two parts."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def signed(key: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    """An EdDSA token over ``payload`` as it is, whatever it holds."""
    return compact({"alg": "EdDSA", "typ": "JWT"}, payload, key.sign)


def unsigned(payload: dict[str, Any]) -> str:
    """``alg: none``: no signature at all."""
    return compact({"alg": "none", "typ": "JWT"}, payload, lambda _signing_input: b"")


def hs256(secret: bytes, payload: dict[str, Any]) -> str:
    """HMAC-SHA256 with ``secret``, e.g. the public key's bytes, which every service holds."""
    return compact({"alg": "HS256", "typ": "JWT"}, payload,
                   lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest())
