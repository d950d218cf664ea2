"""The event envelope (docs/architecture.md) and the exact bytes its hash covers.

The hash covers every field but itself and ``signature``: the signature is
made over the hash, so it cannot be inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, Sequence

from shared.canonical import canonical_json

# C-accelerated JSON string encoder (same output as json.dumps(str, ensure_ascii=False)).
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]
# The C scanner behind json.loads, without loads' wrappers and whitespace regexes.
_scan_json = json.JSONDecoder().scan_once
_second: tuple[int, str] = (-1, "")  # the last whole second formatted by utc_now_iso


def utc_now_iso() -> str:
    """ISO 8601 UTC with microseconds and a ``Z``: sortable as text.

    Formatting the date and time once per second (not per event) makes this
    a fifth of the cost of ``datetime.strftime``; it runs on every append.
    """
    global _second
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    second = _second  # one read: another thread may replace it meanwhile
    if second[0] != seconds:
        second = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{second[1]}.{nanoseconds // 1000:06d}Z"


def new_id() -> str:
    """A random (version 4) UUID as text, as ``str(uuid4())`` but without building a ``UUID``."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def parse_json(text: str) -> Any:
    """``json.loads`` for the log's own canonical JSON, at half its cost per event."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return json.loads(text)  # not a single JSON value: raise loads' own error
    return value


@lru_cache(maxsize=4096)
def actor_json(actor_id: str, role: str) -> str:
    """Canonical JSON of an actor; few actors issue many commands, so it is cached."""
    return canonical_json({"id": actor_id, "role": role})


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
    signature: str | None = None  # the producer's, over ``hash``; not covered by it (shared/signing.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_record(self) -> dict[str, Any]:
        """``to_dict()`` without its deep copy: shares ``actor`` and ``data`` with the envelope.

        For answers serialised at once (``events_since`` sends thousands);
        the caller must not change what it gets.
        """
        return {name: getattr(self, name) for name in _FIELD_NAMES}


_FIELD_NAMES = tuple(field.name for field in fields(Envelope))
_new = object.__new__
_ROW_SETTERS = tuple(getattr(Envelope, field.name).__set__ for field in fields(Envelope))
_set_schema_version, _set_actor, _set_data = (getattr(Envelope, name).__set__
                                              for name in ("schema_version", "actor", "data"))


def envelope_from_row(row: Sequence[Any], schema_version: int, actor: dict[str, str],
                      data: dict[str, Any]) -> Envelope:
    """``Envelope(*row)``, with the given ``schema_version`` and parsed ``actor`` and ``data``.

    For readers that build thousands per page. A frozen dataclass's
    ``__init__`` assigns every field through ``object.__setattr__``; filling
    the slots of a new instance directly costs about 60 % of that, and the
    envelope is just as immutable afterwards.
    """
    envelope = _new(Envelope)
    for set_field, value in zip(_ROW_SETTERS, row):
        set_field(envelope, value)
    _set_schema_version(envelope, schema_version)
    _set_actor(envelope, actor)
    _set_data(envelope, data)
    return envelope


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def hash_input(actor_json: str, causation_id: str | None, correlation_id: str, data_json: str,
               event_id: str, occurred_at: str, position: int, prev_hash: str, recorded_at: str,
               schema_version: int, service: str, stream_id: str, stream_version: int, type: str) -> str:
    """Canonical JSON of the envelope without ``hash`` and ``signature``, built from stored text.

    Equal to ``canonical_json(envelope_without_hash)`` because ``actor`` and
    ``data`` are stored canonically; building it by concatenation lets
    verification hash rows without parsing their payloads. The parameters
    are in canonical (sorted key) order, so a row selected in that order can
    be passed positionally, which is what keeps ``verify`` fast.
    """
    return (
        f'{{"actor":{actor_json},"causation_id":{_text(causation_id)},'
        f'"correlation_id":{_quote(correlation_id)},"data":{data_json},'
        f'"event_id":{_quote(event_id)},"occurred_at":{_quote(occurred_at)},'
        f'"position":{position},"prev_hash":{_quote(prev_hash)},"recorded_at":{_quote(recorded_at)},'
        f'"schema_version":{schema_version},"service":{_quote(service)},'
        f'"stream_id":{_quote(stream_id)},"stream_version":{stream_version},"type":{_quote(type)}}}'
    )


def content_hash(envelope: Envelope) -> str:
    """The hash an envelope's content gives, recomputed from its fields (how a receiver checks ``hash``).

    ``actor`` and ``data`` arrive parsed; their canonical JSON is the text the
    producer stored and hashed.
    """
    return hashlib.sha256(hash_input(
        canonical_json(envelope.actor), envelope.causation_id, envelope.correlation_id,
        canonical_json(envelope.data), envelope.event_id, envelope.occurred_at, envelope.position,
        envelope.prev_hash, envelope.recorded_at, envelope.schema_version, envelope.service, envelope.stream_id,
        envelope.stream_version, envelope.type,
    ).encode()).hexdigest()
