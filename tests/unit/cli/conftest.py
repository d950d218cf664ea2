"""Fixtures of the command-line tests: fresh root options and an in-process ``crm``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from shared.cli import rpc
from shared.cli.app import app
from shared.discovery import installed_services

CRM_KEYS = ("AMQP_URI", "CRM_DATA_DIR", "CRM_MASTER_KEY", "CRM_TOKEN_PUBLIC_KEY", "CRM_TOKEN_PRIVATE_KEY",
            "CRM_SERVICE_TOKEN", "CRM_TOKEN", "CRM_EXTRA_SERVICES", "CRM_SERVICE_KEYS",
            *(f"CRM_{name.upper()}_{setting}" for name in installed_services()
              for setting in ("DATABASE_URL", "SIGNING_KEY")))


@pytest.fixture(autouse=True)
def fresh_cli_state():
    """The root options live in module state: leave none behind for other tests."""
    rpc.configure()
    yield
    rpc.configure()


@pytest.fixture
def invoke(tmp_path):
    """Run ``crm`` in-process with a clean CRM environment plus ``env``."""

    def run(*args: str, env: dict[str, str | None] | None = None):
        base: dict[str, str | None] = {key: None for key in CRM_KEYS}
        base["CRM_DATA_DIR"] = str(tmp_path / "data")
        base.update(env or {})
        return CliRunner(env=base).invoke(app, list(args))

    return run
