"""The token issuer's Ed25519 keys as settings hold them: PEM, or the raw 32 bytes in base64.

The public key setting may hold several keys (PEM blocks, or base64 keys
separated by commas), so that during a rotation services accept tokens
signed with the new key and those still unexpired under the old one.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.ed25519_text import KEY_FORMAT, private_key_from_text, public_key_from_text, public_key_text
from shared.errors import ValidationError

PUBLIC_KEY_SETTING = "CRM_TOKEN_PUBLIC_KEY"
PRIVATE_KEY_SETTING = "CRM_TOKEN_PRIVATE_KEY"
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


def public_keys(text: str) -> tuple[Ed25519PublicKey, ...]:
    """Every Ed25519 public key in ``text``; ``ValidationError`` names the setting otherwise."""
    parts = _PEM_BLOCK.findall(text) if "-----BEGIN" in text else re.split(r"[\s,]+", text.strip())
    try:
        keys = tuple(public_key_from_text(part) for part in parts if part)
    except ValueError:
        keys = ()
    if not keys:
        raise ValidationError({PUBLIC_KEY_SETTING: [f"must be one or more Ed25519 public keys: {KEY_FORMAT} "
                                                    f"(several separated by commas)"]})
    return keys


def private_key(text: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``text``; ``ValidationError`` names the setting otherwise."""
    try:
        return private_key_from_text(text)
    except ValueError as error:
        raise ValidationError({PRIVATE_KEY_SETTING: [f"{error} (unencrypted PKCS#8 PEM)"]}) from error


def public_keys_text(keys: tuple[Ed25519PublicKey, ...]) -> str:
    """``keys`` as the public key setting holds them: base64 raw keys separated by commas."""
    return ",".join(public_key_text(key) for key in keys)
