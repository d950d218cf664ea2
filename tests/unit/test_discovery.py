"""Services are found through the ``carecrm.services`` entry points, and only there."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import typer
from marshmallow import ValidationError as SchemaError

from contracts.catalogue import EVENTS, RPC
from contracts.envelope import Envelope
from shared import discovery
from shared.discovery import (GROUP, ServiceSpec, discovered_services, installed_services, parse_extra_services,
                              service_spec)
from shared.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Replace the installed entry points with ``name=value`` pairs for one test."""

    def install(**points: str) -> None:
        found = [EntryPoint(name, value, GROUP) for name, value in points.items()]
        monkeypatch.setattr(discovery, "entry_points", lambda group: found if group == GROUP else [])
        installed_services.cache_clear()

    yield install
    installed_services.cache_clear()


def test_the_installed_services_are_found_by_their_entry_points():
    services = installed_services()
    assert list(services) == ["audit", "callbacks", "campaigns", "complaints", "customers"]
    assert all(spec.name == name for name, spec in services.items())


@pytest.mark.parametrize("name", ["customers", "complaints", "callbacks", "campaigns"])
def test_a_spec_loads_its_class_command_line_and_contracts(name):
    spec = service_spec(name)
    assert spec.load_class().name == name
    assert isinstance(spec.load_cli(), typer.Typer)
    contracts = spec.load_contracts()
    assert EVENTS[name] is contracts.EVENT_SCHEMAS and RPC[name] is contracts.RPC_SCHEMAS


def test_extra_services_come_after_the_installed_ones_and_may_replace_one():
    found = discovered_services({"CRM_EXTRA_SERVICES": "probe=tests.probe:Probe, customers=scratch.mod:Other"})
    assert list(found) == ["audit", "callbacks", "campaigns", "complaints", "customers", "probe"]
    assert found["probe"] == ServiceSpec("probe", "tests.probe:Probe")
    assert found["customers"] == ServiceSpec("customers", "scratch.mod:Other")
    assert discovered_services({}) == installed_services()
    assert parse_extra_services(" , ") == {}


@pytest.mark.parametrize("text", ["Bad-Name=x:Y", "probe=not a path", "probe", "probe=module.only",
                                  "x" * 33 + "=m:C"])
def test_malformed_extra_services_are_refused_naming_the_variable(text):
    with pytest.raises(ValidationError) as raised:
        discovered_services({"CRM_EXTRA_SERVICES": f"fine=m:C,{text}"})
    [problem] = raised.value.fields["CRM_EXTRA_SERVICES"]
    assert repr(text) in problem and "is not name=module:Class" in problem


def test_an_unknown_service_is_a_lookup_error_listing_the_installed_ones():
    with pytest.raises(LookupError, match="no service 'ghost' is installed .*: audit, callbacks, campaigns, complaints, customers"):
        service_spec("ghost")


def test_broken_entry_points_are_named(fake_entry_points):
    fake_entry_points(customers="services.customers:SERVICE", missing="no_such_module:SERVICE",
                      wrong_type="shared.discovery:GROUP", renamed="services.complaints:SERVICE")
    with pytest.raises(ValidationError) as raised:
        installed_services()
    problems = {key.rsplit(" ", 1)[1]: " ".join(value) for key, value in raised.value.fields.items()}
    assert set(problems) == {"missing", "wrong_type", "renamed"}
    assert "no_such_module:SERVICE does not import: ModuleNotFoundError" in problems["missing"]
    assert "is a str, not a ServiceSpec" in problems["wrong_type"]
    assert "is named 'complaints'" in problems["renamed"]


def test_a_service_name_that_does_not_load_names_the_missing_attribute():
    with pytest.raises(ImportError, match="module services.customers.service has no attribute Nope"):
        ServiceSpec("customers", "services.customers.service:Nope").load_class()
    assert ServiceSpec("bare", "m:C").load_cli() is None and ServiceSpec("bare", "m:C").load_contracts() is None


def test_the_envelope_accepts_any_well_formed_service_name():
    def service_errors(name: str) -> list[str]:
        try:
            Envelope().load({"service": name}, partial=True)
        except SchemaError as error:
            return error.messages.get("service", [])
        return []

    assert service_errors("callbacks") == [] and service_errors("a" * 32) == []
    assert service_errors("Callbacks") and service_errors("a" * 33) and service_errors("9lives")


def test_shared_and_contracts_never_import_a_service_package():
    offenders = []
    for path in [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("contracts").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                          if name == "services" or name.startswith("services.")]
    assert offenders == []
