"""``crm doctor``: check what ``crm up`` needs and say how to fix what is missing.

Its exit code is non-zero when something required is missing, so scripts
and CI can run it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from shared.cli import rpc
from shared.cli.checks import (Check, check_broker, check_data_dir, check_database, check_management, check_python,
                               check_schema, check_secrets, check_service_cli, check_service_code)
from shared.cli.rpc import out_console, print_json, redact
from shared.config import load_settings, read_config_file
from shared.discovery import EXTRA_SERVICES_ENV, discovered_services
from shared.errors import ValidationError


def run_checks(config_path: Path | None = None) -> list[Check]:
    """Every check of ``crm doctor``, in the order a user would fix them."""
    checks = [check_python()]
    try:
        discovered = discovered_services()
    except ValidationError as error:
        fix = f"fix {EXTRA_SERVICES_ENV} (name=module:Class, comma-separated)" \
            if EXTRA_SERVICES_ENV in error.fields else "fix the entry point named, then pip install -e '.[dev]'"
        checks.append(Check("services", "fail", "; ".join(rpc.describe_fields(error.fields)), fix))
        discovered = {}
    config: dict[str, Any] = {}
    path = config_path or rpc.state.config_path
    if path is not None:
        try:
            config = read_config_file(path)
        except ValidationError as error:
            checks.append(Check("config", "fail", "; ".join(rpc.describe_fields(error.fields)),
                                "fix the path given to --config"))
    try:
        settings = load_settings({**config, **rpc.stand_in_secrets(config)}, issuer=True)
    except ValidationError as error:
        checks.append(Check("config", "fail", "; ".join(rpc.describe_fields(error.fields)),
                            "fix these settings in the environment or the config file (see README, Configuration)"))
        return checks
    checks.append(Check("config", "ok", f"AMQP_URI={redact(settings.amqp_uri)}, CRM_DATA_DIR={settings.data_dir}"))
    checks.append(check_data_dir(settings.data_dir))
    checks.append(check_secrets(config, settings.data_dir))
    broker = check_broker(settings.amqp_uri)
    checks.append(broker)
    checks.append(check_management(settings.amqp_uri))
    services = list(dict.fromkeys([*discovered, *settings.database_urls]))
    stores = {service: check_database(service, settings.database_url(service)) for service in services}
    checks.extend(stores.values())
    for spec in discovered.values():
        code = check_service_code(spec)
        checks.append(code)
        checks.append(check_service_cli(spec))
        if code.status == "ok" and stores[spec.name].status == "ok":
            checks.append(check_schema(spec, settings.database_url(spec.name)))
    return checks


_STYLE = {"ok": "green", "note": "cyan", "warn": "yellow", "fail": "bold red"}


def doctor(
    config: Path | None = typer.Option(None, "--config", help="nameko config.yml to check"),
) -> None:
    """Check what crm up needs; say what is missing and how to fix it."""
    checks = run_checks(config)
    failed = [check for check in checks if check.status == "fail"]
    if rpc.state.json_output:
        print_json({"ok": not failed, "checks": [check.to_dict() for check in checks]})
    else:
        console = out_console()
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_column(overflow="fold")
        for check in checks:
            table.add_row(check.name, Text(check.status, style=_STYLE.get(check.status, "")), Text(check.detail))
            if check.fix and check.status != "ok":
                label = "hint" if check.status == "note" else "fix"
                table.add_row("", "", Text(f"{label}: {check.fix}", style="dim"))
        console.print(table)
        if failed:
            console.print(Text(f"{len(failed)} required item(s) missing: "
                               f"{', '.join(check.name for check in failed)}", style="bold red"))
        else:
            console.print(Text("everything crm up needs is in place", style="bold green"))
    if failed:
        raise typer.Exit(1)
