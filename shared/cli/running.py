"""``crm up`` and ``crm serve``: run the services, supervised together or one in the foreground.

``crm up`` is the developer's whole system in one command: every discovered
service as its own ``python -m nameko run`` process, against the local
RabbitMQ, with SQLite stores under the data dir (a service with an owner
database URL is migrated by its owner first). It waits until each one
answers ``health()`` over RPC, then supervises them: a crashed service is
restarted (with backoff), Ctrl-C or SIGTERM stops them all cleanly.
``crm serve`` runs one service in the foreground, for containers and
process managers that do their own supervising.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import signal
import sys
from pathlib import Path
from typing import Any, Mapping

import typer
from rich.table import Table
from rich.text import Text

from shared.cli.checks import check_broker, check_secrets
from shared.cli.migrate import migrate_owned
from shared.cli.rpc import cli_settings, fail, issuer_key, out_console, redact, user_config
from shared.cli.service_choice import chosen_services
from shared.cli.supervisor import StopRequested, Supervisor, service_config
from shared.config import Settings
from shared.processes import nameko_command, service_environment, write_service_config


def _lock_data_dir(run_dir: Path):
    """One ``crm up`` per data dir: a second one would run every service twice."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / "up.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        fail(f"crm up is already running for {run_dir.parent} ({holder}); stop it first "
             f"or set CRM_DATA_DIR to another directory")
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


# -- crm up ------------------------------------------------------------------

def up(
    services: str = typer.Option("", "--services", help="comma-separated service names (default: all)"),
    config: Path | None = typer.Option(None, "--config", help="nameko config.yml (${VAR:default} substitution)"),
    timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="seconds to wait until every service answers"),
    metrics_port: int | None = typer.Option(None, "--metrics-port", min=1, max=65000,
                                            help="serve Prometheus metrics: the first service on this port, "
                                                 "the next on the port after, and so on"),
) -> None:
    """Start every service against the local RabbitMQ and supervise them until Ctrl-C."""
    chosen = chosen_services([name.strip() for name in services.split(",") if name.strip()], "--services")
    settings = cli_settings(config)
    settings = dataclasses.replace(settings, data_dir=settings.data_dir.resolve())
    issuer = issuer_key(settings)
    base_config = user_config(config)
    broker = check_broker(settings.amqp_uri)
    if broker.status == "fail":
        fail(f"{broker.detail}. {broker.fix}")
    console = out_console()
    lock = _lock_data_dir(settings.data_dir / "run")
    migrate_owned(settings, chosen.values())
    stop = StopRequested()
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor(chosen, settings, base_config, issuer, stop, console.print, metrics_port)
    _describe_layout(console, supervisor, settings, base_config)
    try:
        supervisor.start_all()
        if not supervisor.wait_until_healthy(timeout):
            if stop.event.is_set():
                return
            for child in supervisor.children:
                if child.state != "up":
                    console.print(Text(f"{child.name} did not come up: {child.last_problem}", style="red"))
                    console.print(Text(child.log_tail(), style="dim"))
                    console.print(f"full log: {child.log_file}")
            raise typer.Exit(1)
        names = ", ".join(child.name for child in supervisor.children)
        console.print(Text(f"all services are up: {names}. Ctrl-C stops them.", style="bold green"))
        supervisor.supervise()
    finally:
        supervisor.stop_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        lock.close()


def _describe_layout(console, supervisor: Supervisor, settings: Settings, base_config: Mapping[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("broker", redact(settings.amqp_uri))
    table.add_row("data", str(settings.data_dir))
    for child in supervisor.children:
        table.add_row(f"{child.name} store", redact(settings.database_url(child.name)))
    table.add_row("logs", str(supervisor.log_dir / "<service>.log"))
    table.add_row("configs", str(supervisor.run_dir / "<service>.yml"))
    if check_secrets(base_config, settings.data_dir).status == "note":
        table.add_row("secrets", f"{settings.data_dir / 'secrets.json'} (generated for development)")
    if settings.signing.public_keys is None:
        table.add_row("signing keys", f"{settings.data_dir / 'signing'} (generated for development)")
    console.print(table)


# -- crm serve ---------------------------------------------------------------

def serve(
    name: str = typer.Argument(..., help="the service to run"),
    config: Path | None = typer.Option(None, "--config", help="nameko config.yml (${VAR:default} substitution)"),
) -> None:
    """Run one service in the foreground (for containers and process managers)."""
    spec = chosen_services([name], "NAME")[name]
    settings = cli_settings(config)
    issuer = None if settings.service_token else settings.token_private_key  # a configured token wins
    config_file = write_service_config(settings.data_dir / "run", name,
                                       service_config(settings, user_config(config), spec, issuer))
    command = nameko_command(spec.service_class, config_file)
    sys.stdout.flush()
    os.execve(command[0], command, service_environment())
