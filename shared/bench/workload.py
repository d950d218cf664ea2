"""What every contestant writes: one customer registration per command.

The payload looks like a sealed ``CustomerRegistered`` (PII as AES-GCM
ciphertext text, the rest plain), about 300 bytes of canonical JSON, so
our store and the peer store the same amount of data per command.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from shared.crypto import PREFIX

SERVICE = "customers"
EVENT_TYPE = "CustomerRegistered"


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does; ``QUICK`` trades precision for time."""

    sqlite_commands: int
    postgres_commands: int
    log_events: int          # the replay/verify log holds at least this many events
    build_batch: int         # events per append while building that log
    rpc_seconds: float       # per RPC figure, split over ``rpc_rounds``
    rpc_rounds: int          # no-op and register take turns this many times
    rpc_in_flight: int
    latency_samples: int
    signature_events: int    # events signed, checked and verified one signature each for the signing figures
    audit_ingest_events: int = 20_000      # events caught up into a fresh audit ledger, every one checked
    audit_ledger_entries: int = 1_000_000  # the bulk-built ledger that replay, verify and the proofs run on
    campaign_customers: int = 100_000  # customers a campaign run greets


DEFAULT = Sizes(sqlite_commands=5000, postgres_commands=3000, log_events=50_000, build_batch=500,
                rpc_seconds=6.0, rpc_rounds=3, rpc_in_flight=20, latency_samples=200, signature_events=5000)
QUICK = Sizes(sqlite_commands=500, postgres_commands=300, log_events=5000, build_batch=500,
              rpc_seconds=1.0, rpc_rounds=1, rpc_in_flight=20, latency_samples=30, signature_events=1000,
              audit_ingest_events=3000, audit_ledger_entries=30_000, campaign_customers=2000)


def _ciphertext(plain_bytes: int) -> str:
    """Text the size of ``SubjectKey.seal`` output: prefix + base64(nonce + ciphertext + tag)."""
    return PREFIX + base64.b64encode(os.urandom(12 + plain_bytes + 16)).decode()


def registration_attributes() -> dict[str, Any]:
    """One customer's attributes as they reach the log (≈ 300 bytes with an id)."""
    return {"name": _ciphertext(6), "phone": _ciphertext(11), "email": None, "birthday": None,
            "birthday_calendar": "gregorian", "locale": "zh-CN", "timezone": "Asia/Shanghai",
            "tier": "general", "tags": ["vip"], "consents": ["callbacks"]}


def registrations(count: int) -> list[dict[str, Any]]:
    """Payloads made before the clock starts, so timing covers storing only."""
    return [registration_attributes() for _ in range(count)]
