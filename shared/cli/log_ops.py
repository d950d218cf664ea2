"""``crm rebuild``, ``crm verify`` and ``crm dlq``: operating a service's log and projections.

They call the service's common endpoints (shared/log_endpoints.py), so they
act on the running service and its live database.
"""

from __future__ import annotations

import typer

from shared.cli.rpc import emit, fail, print_table, rpc_call

dlq_app = typer.Typer(help="Dead-lettered (poison) events of a service's projections.", no_args_is_help=True)


def rebuild(service: str = typer.Argument(..., help="Service whose projections to rebuild")) -> None:
    """Rebuild every projection from the log and compare checksums with the live one."""
    reports = rpc_call(service, "rebuild_projections")
    print_table(reports, ["projection", "events", "live_checksum", "rebuilt_checksum", "equal", "same_chain",
                          "repaired", "refused"])
    refused = [f"{report['projection']}: {report['refused']}" for report in reports if report["refused"]]
    if refused:
        fail("not repaired, " + "; ".join(refused))
    if not all(report["equal"] or report["repaired"] for report in reports):
        fail("a rebuilt projection differs from the live one and was not repaired")


def verify(service: str, from_position: int = typer.Option(1, min=1),
           every_signature: bool = typer.Option(False, "--every-signature",
                                                help="check every event's signature, not a sample (slower)")) -> None:
    """Check the service's hash chain and signatures; exit 1 at the first bad position."""
    report = rpc_call(service, "verify_log", from_position, every_signature=every_signature)
    emit(report)
    if not report["ok"]:
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list(service: str) -> None:
    letters = rpc_call(service, "dead_letters")
    print_table([{**letter, "type": letter["envelope"]["type"]} for letter in letters],
                ["id", "consumer", "upstream", "position", "type", "attempts", "error", "failed_at"])


@dlq_app.command("retry")
def dlq_retry(service: str, dead_letter_id: int = typer.Argument(..., min=1)) -> None:
    result = rpc_call(service, "retry_dead_letter", dead_letter_id)
    emit(result)
    if result["outcome"] != "applied":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("rebuild")(rebuild)
    app.command("verify")(verify)
    app.add_typer(dlq_app, name="dlq")
