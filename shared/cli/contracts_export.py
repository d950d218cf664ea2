"""``crm contracts export``: the JSON Schema of every event and RPC payload, for non-Python callers."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from shared.cli import rpc
from shared.cli.rpc import fail, print_json

contracts_app = typer.Typer(help="Contracts: JSON Schema of every event and RPC payload.",
                            no_args_is_help=True)

CONTRACTS_EXPORTER = "contracts.jsonschema"  # module with export(out_dir) -> list[Path]


@contracts_app.command("export")
def contracts_export(
    out: Path = typer.Option(Path("contracts/schema"), "--out", help="directory for the JSON Schema files"),
) -> None:
    """Write the JSON Schema of every event and RPC payload to --out."""
    try:
        exporter = importlib.import_module(CONTRACTS_EXPORTER)
    except ModuleNotFoundError as error:
        if error.name != CONTRACTS_EXPORTER:
            raise
        fail(f"contracts export is not available in this build ({CONTRACTS_EXPORTER} is missing)")
    written = exporter.export(out)
    if rpc.state.json_output:
        print_json([str(path) for path in written])
    else:
        for path in written:
            typer.echo(str(path))
        typer.echo(f"{len(written)} schema files in {out}")
