"""Which services make up CareCRM, found through the ``carecrm.services`` entry points.

Each service package declares itself once, in ``pyproject.toml``::

    [project.entry-points."carecrm.services"]
    <name> = "<package>:SERVICE"

where ``SERVICE`` is a ``ServiceSpec`` holding only strings, so listing the
services imports no service code. Everything that needs the list (``crm
up``, the mounted sub-commands, the settings, the contracts catalogue, the
bench) asks this module, so ``shared`` and ``contracts`` never name a
service package, and a new service is added by installing it.

``CRM_EXTRA_SERVICES`` (``name=module:Class[,name=module:Class]``) adds
services for one run without installing them: a developer trying a service
from a scratch folder, or a test that starts a probe service. An extra with
the name of an installed service replaces it.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Mapping

from contracts.envelope import SERVICE_NAME, SERVICE_NAME_RULE
from shared.errors import ValidationError

GROUP = "carecrm.services"
EXTRA_SERVICES_ENV = "CRM_EXTRA_SERVICES"
_NAME = re.compile(SERVICE_NAME)
_OBJECT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its name and where its parts live, as import paths.

    ``service_class`` is the nameko service (``module:Class``), ``cli`` its
    typer app mounted as ``crm <name>`` (``module:attr``, optional) and
    ``contracts`` the module defining its ``EVENT_SCHEMAS`` and
    ``RPC_SCHEMAS`` (optional). ``customer_record`` names the
    ``AggregateKind`` of the service that keeps the customer file (its
    stream and its fold), so the audit rebuilds a customer's record as of
    any time with the very fold that service uses. ``bench`` names the
    function ``crm bench`` runs for the service's own figures
    (``(directory, sizes, phase) -> figures``). Nothing is imported until
    asked for.
    """

    name: str
    service_class: str
    cli: str | None = None
    contracts: str | None = None
    customer_record: str | None = None
    bench: str | None = None

    def load_class(self) -> type:
        return import_object(self.service_class)

    def load_cli(self) -> Any | None:
        """The object ``cli`` names, or ``None`` for a service without a command line."""
        return None if self.cli is None else import_object(self.cli)

    def load_contracts(self) -> ModuleType | None:
        return None if self.contracts is None else importlib.import_module(self.contracts)

    def load_bench(self) -> Any | None:
        return None if self.bench is None else import_object(self.bench)

    def load_customer_record(self) -> Any | None:
        """The ``AggregateKind`` ``customer_record`` names, or ``None`` for a service that keeps no customer file."""
        return None if self.customer_record is None else import_object(self.customer_record)


def import_object(path: str) -> Any:
    """The attribute at ``module:attr``; import errors propagate unchanged."""
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"module {module_name} has no attribute {attribute}") from None


@functools.cache
def installed_services() -> dict[str, ServiceSpec]:
    """The services installed in this environment, by name, in name order (installers keep no other).

    A broken entry point is a packaging mistake, reported as a
    ``ValidationError`` naming it so the CLI can say which one to fix.
    """
    services: dict[str, ServiceSpec] = {}
    problems: dict[str, list[str]] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda point: point.name):
        where = f"{GROUP} entry point {point.name}"
        try:
            spec = point.load()
        except Exception as error:  # noqa: BLE001 - any import failure is the entry point's problem
            problems[where] = [f"{point.value} does not import: {type(error).__name__}: {error}"]
            continue
        if not isinstance(spec, ServiceSpec):
            problems[where] = [f"{point.value} is a {type(spec).__name__}, not a ServiceSpec"]
        elif spec.name != point.name or not _NAME.match(spec.name):
            problems[where] = [f"{point.value} is named {spec.name!r}; the entry point and the spec must "
                               f"agree on a name of {SERVICE_NAME_RULE}"]
        else:
            services[spec.name] = spec
    if problems:
        raise ValidationError(problems)
    return services


def discovered_services(environ: Mapping[str, str] | None = None) -> dict[str, ServiceSpec]:
    """The installed services plus those in ``CRM_EXTRA_SERVICES``, in that order."""
    environ = os.environ if environ is None else environ
    return {**installed_services(), **parse_extra_services(environ.get(EXTRA_SERVICES_ENV, ""))}


def service_spec(name: str, environ: Mapping[str, str] | None = None) -> ServiceSpec:
    """The spec of the service called ``name``; ``LookupError`` says which ones exist."""
    services = discovered_services(environ)
    try:
        return services[name]
    except KeyError:
        raise LookupError(f"no service {name!r} is installed (entry points {GROUP}: "
                          f"{', '.join(services) or 'none'})") from None


def parse_extra_services(text: str) -> dict[str, ServiceSpec]:
    """Parse ``name=module:Class`` pairs separated by commas."""
    services: dict[str, ServiceSpec] = {}
    problems: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not _NAME.match(name) or not _OBJECT_PATH.match(path):
            problems.append(f"{item!r} is not name=module:Class (name: {SERVICE_NAME_RULE})")
        else:
            services[name] = ServiceSpec(name, path)
    if problems:
        raise ValidationError({EXTRA_SERVICES_ENV: problems})
    return services
