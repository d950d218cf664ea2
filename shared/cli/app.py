"""The ``crm`` entry point (``pyproject.toml``: ``crm = "shared.cli.app:main"``).

Global options come before the command: ``crm --json --token T customers
get ID``. Each installed service may add its own commands: the typer app its
``ServiceSpec.cli`` names is mounted as ``crm <name>``. A service without one
is simply absent, and one whose app fails to load shows up as a command that
explains the failure, so the rest of the command line keeps working while a
service is being written.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Iterable

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko imports eventlet

import typer  # noqa: E402

from shared.bench.command import bench  # noqa: E402
from shared.cli import log_ops, rpc  # noqa: E402
from shared.cli.contracts_export import contracts_app  # noqa: E402
from shared.cli.doctor import doctor  # noqa: E402
from shared.cli.health import health  # noqa: E402
from shared.cli.migrate import migrate  # noqa: E402
from shared.cli.running import serve, up  # noqa: E402
from shared.cli.tokens import token  # noqa: E402
from shared.discovery import ServiceSpec, installed_services  # noqa: E402
from shared.errors import ValidationError  # noqa: E402

app = typer.Typer(
    name="crm",
    help="CareCRM: event-sourced customer-service CRM. Start with `crm doctor`, then `crm up`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets and tokens
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    json_output: bool = typer.Option(False, "--json", help="Print results as JSON."),
    token: str | None = typer.Option(None, "--token", envvar=rpc.TOKEN_ENV, show_envvar=True,
                                     help="Signed token for RPC calls (crm token)."),
    config: Path | None = typer.Option(None, "--config",
                                       help="nameko config.yml with ${VAR:default} substitution."),
    timeout: float = typer.Option(rpc.DEFAULT_TIMEOUT_SECONDS, "--timeout", min=0.1,
                                  help="Seconds to wait for an RPC answer."),
) -> None:
    rpc.configure(json_output=json_output, token=token, config_path=config, timeout=timeout)


def mount_service_clis(root_app: typer.Typer, services: Iterable[ServiceSpec]) -> dict[str, str]:
    """Add ``crm <name>`` for each service whose spec names a typer app; return load problems."""
    problems: dict[str, str] = {}
    for spec in services:
        try:
            sub_app = spec.load_cli()
        except Exception as error:  # noqa: BLE001 - one broken service must not break `crm`
            problems[spec.name] = f"{type(error).__name__}: {error}"
            _mount_unavailable(root_app, spec, problems[spec.name])
        else:
            if isinstance(sub_app, typer.Typer):
                root_app.add_typer(sub_app, name=spec.name)
    return problems


def _installed_services() -> list[ServiceSpec]:
    """The installed services; none when an entry point is broken (``crm doctor`` names it)."""
    try:
        return list(installed_services().values())
    except ValidationError:
        return []


def _mount_unavailable(root_app: typer.Typer, spec: ServiceSpec, problem: str) -> None:
    name = spec.name

    def unavailable() -> None:
        rpc.fail(f"the {name} commands do not load: {problem} (crm doctor)")

    unavailable.__doc__ = f"(unavailable: {spec.cli} does not load)"
    root_app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                             "help_option_names": []})(unavailable)


app.command("up")(up)
app.command("serve")(serve)
app.command("migrate")(migrate)
app.command("health")(health)
app.command("doctor")(doctor)
app.command("token")(token)
app.add_typer(contracts_app, name="contracts")
log_ops.register(app)
app.command("bench")(bench)
mount_service_clis(app, _installed_services())


def main() -> None:
    # The AMQP libraries log connection chatter as warnings; the commands report what matters.
    for name in ("amqp", "kombu", "nameko", "pika"):
        logging.getLogger(name).setLevel(logging.ERROR)
    app(prog_name="crm")
