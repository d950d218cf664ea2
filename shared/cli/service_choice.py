"""Which services a command acts on: every discovered one, or those named on its command line."""

from __future__ import annotations

from typing import Sequence

from shared.cli.rpc import fail, fail_invalid
from shared.discovery import ServiceSpec, discovered_services
from shared.errors import ValidationError


def chosen_services(names: Sequence[str], option: str) -> dict[str, ServiceSpec]:
    """The discovered services called ``names``, or all of them when no name is given.

    A malformed ``CRM_EXTRA_SERVICES`` or a broken entry point ends the
    command naming it (exit 2), as does a name nobody declared, naming ``option``.
    """
    try:
        services = discovered_services()
    except ValidationError as error:
        fail_invalid(error)
    unknown = [name for name in names if name not in services]
    if unknown:
        fail(f"{option}: unknown service {', '.join(repr(name) for name in unknown)}; "
             f"registered: {', '.join(services)}", 2)
    return {name: services[name] for name in (names or services)}
