"""The event catalogue: every event type, its producer and its data schema.

Built from the installed services (``shared.discovery``): each names the
contracts module defining its ``EVENT_SCHEMAS`` and ``RPC_SCHEMAS``, so a
new service's contracts join the catalogue, and the JSON Schema export, by
being installed.
"""

from __future__ import annotations

from marshmallow import Schema

from shared.discovery import installed_services

_CONTRACTS = {name: module for name, spec in installed_services().items()
              if (module := spec.load_contracts()) is not None}

EVENTS: dict[str, dict[str, type[Schema]]] = {name: module.EVENT_SCHEMAS for name, module in _CONTRACTS.items()}

RPC: dict[str, dict[str, type[Schema]]] = {name: module.RPC_SCHEMAS for name, module in _CONTRACTS.items()}
