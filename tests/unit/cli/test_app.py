"""The root ``crm`` app: its commands and each installed service's sub-commands."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from shared.cli.app import app, mount_service_clis
from shared.discovery import ServiceSpec


@pytest.fixture
def scratch_cli(tmp_path, monkeypatch):
    """A service spec whose command line is a module written into tmp_path for the test."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, cli_source: str | None) -> ServiceSpec:
        if cli_source is None:
            return ServiceSpec(name, f"{name}_service:Service")
        (tmp_path / f"{name}_cli.py").write_text(cli_source)
        return ServiceSpec(name, f"{name}_service:Service", cli=f"{name}_cli:app")

    return make


def test_service_clis_are_mounted_and_broken_ones_explain_themselves(scratch_cli):
    specs = [scratch_cli("zz_working", "import typer\napp = typer.Typer()\n\n"
                                       "@app.command()\ndef hello(name: str):\n    print('hello', name)\n\n"
                                       "@app.command()\ndef bye():\n    pass\n"),
             scratch_cli("zz_broken", "raise RuntimeError('half-written')\n"),
             scratch_cli("zz_without_cli", None)]
    root = typer.Typer()
    problems = mount_service_clis(root, specs)
    assert problems == {"zz_broken": "RuntimeError: half-written"}
    runner = CliRunner()
    hello = runner.invoke(root, ["zz_working", "hello", "ann"])
    assert hello.exit_code == 0 and "hello ann" in hello.stdout
    broken = runner.invoke(root, ["zz_broken", "anything", "--at-all"])
    assert broken.exit_code == 1
    assert "the zz_broken commands do not load: RuntimeError: half-written" in broken.stderr
    assert runner.invoke(root, ["zz_without_cli"]).exit_code == 2  # no such command


def test_the_installed_services_commands_are_mounted():
    names = {command.name for command in typer.main.get_command(app).commands.values()}
    assert {"up", "serve", "health", "doctor", "token", "contracts"} <= names
    assert {"customers", "complaints"} <= names
