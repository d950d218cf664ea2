"""Which services make up CareCRM, and where each one's nameko class lives.

``crm up`` starts every entry, ``crm doctor`` checks that each imports, and
the command line mounts ``services.<name>.cli`` for each name that has one.
A new service is added here and nowhere else.

``CRM_EXTRA_SERVICES`` (``name=module:Class[,name=module:Class]``) adds
services for one run without editing this file: a developer trying a
service from a scratch folder, or a test that starts a probe service.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Mapping

from shared.errors import ValidationError

SERVICES: dict[str, str] = {
    "customers": "services.customers.service:CustomersService",
    "complaints": "services.complaints.service:ComplaintsService",
}

EXTRA_SERVICES_ENV = "CRM_EXTRA_SERVICES"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def registered_services(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``SERVICES`` plus the ones named in ``CRM_EXTRA_SERVICES``, in that order."""
    environ = os.environ if environ is None else environ
    services = dict(SERVICES)
    services.update(parse_extra_services(environ.get(EXTRA_SERVICES_ENV, "")))
    return services


def parse_extra_services(text: str) -> dict[str, str]:
    """Parse ``name=module:Class`` pairs separated by commas."""
    services: dict[str, str] = {}
    problems: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not _NAME.match(name) or not _PATH.match(path):
            problems.append(f"{item!r} is not name=module:Class (name: lower-case letters, digits, _)")
        else:
            services[name] = path
    if problems:
        raise ValidationError({EXTRA_SERVICES_ENV: problems})
    return services


def import_service(path: str) -> type:
    """The service class at ``module:Class``; import errors propagate unchanged."""
    module_name, _, class_name = path.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ImportError(f"module {module_name} has no class {class_name}") from None
