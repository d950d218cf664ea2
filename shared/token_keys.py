"""The token issuer's Ed25519 keys as settings hold them: PEM, or the raw 32 bytes in base64.

The public key setting may hold several keys (PEM blocks, or base64 keys
separated by commas), so that during a rotation services accept tokens
signed with the new key and those still unexpired under the old one.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import ValidationError

PUBLIC_KEY_SETTING = "CRM_TOKEN_PUBLIC_KEY"
PRIVATE_KEY_SETTING = "CRM_TOKEN_PRIVATE_KEY"
RAW_KEY_BYTES = 32
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)
_FORMAT = "PEM, or the raw 32 bytes in base64"


def public_keys(text: str) -> tuple[Ed25519PublicKey, ...]:
    """Every Ed25519 public key in ``text``; ``ValidationError`` names the setting otherwise."""
    parts = _PEM_BLOCK.findall(text) if "-----BEGIN" in text else re.split(r"[\s,]+", text.strip())
    keys = tuple(_public_key(part) for part in parts if part)
    if not keys or None in keys:
        raise ValidationError({PUBLIC_KEY_SETTING: [f"must be one or more Ed25519 public keys: {_FORMAT} "
                                                    f"(several separated by commas)"]})
    return keys  # type: ignore[return-value]


def private_key(text: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``text``; ``ValidationError`` names the setting otherwise."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.strip().encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_raw(text))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError({PRIVATE_KEY_SETTING: [f"must be an Ed25519 private key: {_FORMAT} "
                                                     f"(unencrypted PKCS#8 PEM)"]})
    return key


def new_key_pair() -> tuple[str, str]:
    """A fresh (private, public) key pair, each as base64 of its raw bytes."""
    key = Ed25519PrivateKey.generate()
    return base64.b64encode(key.private_bytes_raw()).decode(), public_keys_text((key.public_key(),))


def public_keys_text(keys: tuple[Ed25519PublicKey, ...]) -> str:
    """``keys`` as the public key setting holds them: base64 raw keys separated by commas."""
    return ",".join(base64.b64encode(key.public_bytes_raw()).decode() for key in keys)


def _public_key(text: str) -> Ed25519PublicKey | None:
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(_raw(text))
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def _raw(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as error:
        raise ValueError("not base64") from error
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError(f"{len(raw)} bytes, not {RAW_KEY_BYTES}")
    return raw
