"""``crm bench``: the typer command the CLI mounts (``app.command("bench")(bench)``)."""

from __future__ import annotations

from typing import Annotated, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.bench.scratch import DEFAULT_POSTGRES_URL
from shared.config import DEFAULT_AMQP_URI


class ProgressPhases:
    """Shows each phase of the run as a progress bar (on stderr, so ``--json`` stays clean)."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __call__(self, description: str, total: int) -> Callable[[int], None]:
        task = self.progress.add_task(description, total=max(total, 1), completed=0 if total else 1)
        return lambda steps: self.progress.advance(task, steps)


def bench(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Far fewer commands and samples (about a minute).")] = False,
    postgres_url: Annotated[str, typer.Option(
        "--postgres-url", envvar="CRM_BENCH_POSTGRES_URL",
        help="PostgreSQL server to bench on; a throwaway database crm_bench_<uuid> is created there and dropped."),
    ] = DEFAULT_POSTGRES_URL,
    amqp_uri: Annotated[str, typer.Option(
        "--amqp-uri", envvar="AMQP_URI",
        help="RabbitMQ for the RPC figures; a throwaway vhost is used when rabbitmqctl is available."),
    ] = DEFAULT_AMQP_URI,
) -> None:
    """Measure append, replay, verify and RPC figures (docs/architecture.md, "Figures").

    Append rates are compared with the eventsourcing library in the same run
    when it is installed; RPC figures come from real services started in
    their own processes on fresh data and stopped at the end.
    """
    from shared.bench.report import print_table, to_json  # imported here: `crm` starts fast
    from shared.bench.runner import Options, run_bench

    json_output = json_output or bool(ctx.parent and ctx.parent.params.get("json_output"))  # `crm --json bench`
    stderr = Console(stderr=True)
    options = Options(quick=quick, postgres_url=postgres_url, amqp_uri=amqp_uri)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=stderr) as progress:
            result = run_bench(options, ProgressPhases(progress))
    except KeyboardInterrupt:
        stderr.print("interrupted: the bench's services are stopped and its scratch database and vhost removed")
        raise typer.Exit(130) from None
    if json_output:
        typer.echo(to_json(result))
    else:
        print_table(result, Console())
    if result["errors"]:
        raise typer.Exit(1)
