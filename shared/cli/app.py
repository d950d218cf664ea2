"""The ``crm`` entry point (``pyproject.toml``: ``crm = "shared.cli.app:main"``).

Global options come before the command: ``crm --json --token T customers
get ID``. Each registered service may add its own commands by defining a
typer ``app`` in ``services/<name>/cli.py``; it is mounted as ``crm <name>``.
A service without one is simply absent, and one whose module fails to import
shows up as a command that explains the failure, so the rest of the command
line keeps working while a service is being written.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko imports eventlet

import typer  # noqa: E402

from services.registry import SERVICES  # noqa: E402
from shared.bench.command import bench  # noqa: E402
from shared.cli import log_ops, ops, rpc  # noqa: E402

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


def mount_service_clis(root_app: typer.Typer, services=SERVICES) -> dict[str, str]:
    """Add ``crm <name>`` for each service module that defines ``app``; return load problems."""
    problems: dict[str, str] = {}
    for name in services:
        module_name = f"services.{name}.cli"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name in (module_name, f"services.{name}"):
                continue  # the service has no command line (yet)
            problems[name] = f"{type(error).__name__}: {error}"
        except Exception as error:  # noqa: BLE001 - one broken service must not break `crm`
            problems[name] = f"{type(error).__name__}: {error}"
        else:
            sub_app = getattr(module, "app", None)
            if isinstance(sub_app, typer.Typer):
                root_app.add_typer(sub_app, name=name)
            continue
        _mount_unavailable(root_app, name, problems[name])
    return problems


def _mount_unavailable(root_app: typer.Typer, name: str, problem: str) -> None:
    def unavailable() -> None:
        rpc.fail(f"the {name} commands do not load: {problem} (crm doctor)")

    unavailable.__doc__ = f"(unavailable: services/{name}/cli.py does not import)"
    root_app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                             "help_option_names": []})(unavailable)


ops.register(app)
log_ops.register(app)
app.command("bench")(bench)
service_cli_problems = mount_service_clis(app)


def main() -> None:
    # The AMQP libraries log connection chatter as warnings; the commands report what matters.
    for name in ("amqp", "kombu", "nameko", "pika"):
        logging.getLogger(name).setLevel(logging.ERROR)
    app(prog_name="crm")
