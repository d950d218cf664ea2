"""Fingerprints that bind a command id to the method and payload it first ran with.

``command_results`` keeps them beside each command's answer, for good: the
table is append-only. Payloads hold personal data, so the fingerprint is an
HMAC under a key derived from the service's master key; a plain hash of a
phone number could be found again by hashing every phone number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping


def fingerprint(method: str, payload: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the method and the validated payload (without its ``command_id``)."""
    body = {name: value for name, value in payload.items() if name != "command_id"}
    text = json.dumps({"method": method, "payload": body}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def fingerprint_key(master_key: bytes) -> bytes:
    """The service's key for command fingerprints, derived from its master key (never the key itself)."""
    return hmac.new(master_key, b"carecrm command fingerprint", hashlib.sha256).digest()
