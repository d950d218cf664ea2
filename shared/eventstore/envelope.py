"""The event envelope of DESIGN.md and the exact bytes its hash covers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

# C-accelerated JSON string encoder (same output as json.dumps(str, ensure_ascii=False)).
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]


def utc_now_iso() -> str:
    """ISO 8601 UTC with microseconds and a ``Z``: sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return str(uuid4())


@dataclass(frozen=True)
class CommandContext:
    """Who asked and why: copied into every event the command appends."""

    actor_id: str
    role: str
    correlation_id: str = field(default_factory=new_id)
    causation_id: str | None = None

    @property
    def actor(self) -> dict[str, str]:
        return {"id": self.actor_id, "role": self.role}


@dataclass(frozen=True)
class NewEvent:
    """An event a command decided on, before the store gives it a place."""

    type: str
    data: dict[str, Any]
    schema_version: int = 1
    occurred_at: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    event_id: str
    type: str
    schema_version: int
    service: str
    stream_id: str
    stream_version: int
    position: int
    occurred_at: str
    recorded_at: str
    actor: dict[str, str]
    correlation_id: str
    causation_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def hash_input(*, actor_json: str, causation_id: str | None, correlation_id: str, data_json: str,
               event_id: str, occurred_at: str, position: int, prev_hash: str, recorded_at: str,
               schema_version: int, service: str, stream_id: str, stream_version: int, type: str) -> str:
    """Canonical JSON of the envelope without ``hash``, built from stored text.

    Equal to ``canonical_json(envelope_without_hash)`` because ``actor`` and
    ``data`` are stored canonically; building it by concatenation lets
    verification hash rows without parsing their payloads.
    """
    return (
        f'{{"actor":{actor_json},"causation_id":{_text(causation_id)},'
        f'"correlation_id":{_text(correlation_id)},"data":{data_json},'
        f'"event_id":{_text(event_id)},"occurred_at":{_text(occurred_at)},'
        f'"position":{position},"prev_hash":{_text(prev_hash)},"recorded_at":{_text(recorded_at)},'
        f'"schema_version":{schema_version},"service":{_text(service)},'
        f'"stream_id":{_text(stream_id)},"stream_version":{stream_version},"type":{_text(type)}}}'
    )
