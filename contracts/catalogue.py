"""The event catalogue: every event type, its producer and its data schema."""

from __future__ import annotations

from marshmallow import Schema

from contracts import customers
from contracts import complaints

EVENTS: dict[str, dict[str, type[Schema]]] = {
    "customers": customers.EVENT_SCHEMAS,
    "complaints": complaints.EVENT_SCHEMAS,
}

RPC: dict[str, dict[str, type[Schema]]] = {
    "customers": customers.RPC_SCHEMAS,
    "complaints": complaints.RPC_SCHEMAS,
}
