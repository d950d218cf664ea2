"""The event catalogue: every event type, its producer and its data schema.

Built from the installed services (``shared.discovery``): each names the
contracts module defining its ``EVENT_SCHEMAS`` and ``RPC_SCHEMAS``, so a
new service's contracts join the catalogue, and the JSON Schema export, by
being installed.
"""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema

from shared.discovery import installed_services

_CONTRACTS = {name: module for name, spec in installed_services().items()
              if (module := spec.load_contracts()) is not None}

EVENTS: dict[str, dict[str, type[Schema]]] = {name: module.EVENT_SCHEMAS for name, module in _CONTRACTS.items()}

RPC: dict[str, dict[str, type[Schema]]] = {name: module.RPC_SCHEMAS for name, module in _CONTRACTS.items()}


def with_command_id(service: str, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with a fresh ``command_id`` when ``method`` is a command and the caller gave none.

    Callers send it so that their own retries, and the service's dedupe of
    redelivered requests, can never run a command twice. Reads (schemas
    without ``command_id``) and unknown methods are passed as they are.
    """
    schema = RPC.get(service, {}).get(method)
    if schema is None or "command_id" not in schema._declared_fields or kwargs.get("command_id"):
        return kwargs
    return {**kwargs, "command_id": str(uuid.uuid4())}
