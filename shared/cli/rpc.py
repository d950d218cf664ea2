"""Calling the services from the shell, and showing what they answer.

Every ``crm <service> ...`` command is a thin wrapper around ``rpc_call``:
it sends the call over nameko RPC with the caller's token in the context
data key ``authorization`` and prints the result with ``emit`` (a record, a
table, or JSON with the global ``--json``). Failures end the command with a
one-line message on stderr: exit code 1 when the call failed (the service's
``RemoteError``, a service not running, a broker not reachable), 2 when the
command line or the configuration is wrong.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NoReturn, Sequence
from urllib.parse import urlsplit, urlunsplit

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.config import Settings, load_settings, read_config_file
from shared.errors import ValidationError
from shared.token_keys import PRIVATE_KEY_SETTING, PUBLIC_KEY_SETTING

TOKEN_ENV = "CRM_TOKEN"
DEFAULT_TIMEOUT_SECONDS = 30.0
#: Stand-in secrets for commands that only need the broker address: they
#: validate the rest of the configuration without generating dev secrets.
PLACEHOLDER_KEY = "A" * 43 + "="


@dataclass
class CliState:
    """The root command's options, read by every sub-command."""

    json_output: bool = False
    token: str | None = None
    config_path: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


state = CliState()


def configure(json_output: bool = False, token: str | None = None, config_path: Path | None = None,
              timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    global state
    state = CliState(json_output=json_output, token=token or None, config_path=config_path, timeout=timeout)


# -- failures ----------------------------------------------------------------

def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code``."""
    err_console().print(Text("error: ", style="bold red") + Text(message))
    raise typer.Exit(code)


def describe_fields(fields: Any, prefix: str = "") -> list[str]:
    """Flatten a ``ValidationError.fields`` mapping into ``"path: message"`` lines."""
    if isinstance(fields, Mapping):
        lines: list[str] = []
        for name, messages in fields.items():
            path = f"{prefix}.{name}" if prefix else str(name)
            lines.extend(describe_fields(messages, path))
        return lines
    if isinstance(fields, (list, tuple)):
        if all(isinstance(item, str) for item in fields):
            return [f"{prefix}: {' '.join(fields)}" if prefix else " ".join(fields)]
        return [line for item in fields for line in describe_fields(item, prefix)]
    return [f"{prefix}: {fields}" if prefix else str(fields)]


def fail_invalid(error: ValidationError, what: str = "invalid configuration",
                 names: Mapping[str, str] | None = None) -> NoReturn:
    """Report each invalid field on its own line and exit 2.

    ``names`` maps field names to what the user typed (``role`` → ``--role``).
    """
    names = names or {}
    fields = {names.get(key, key): value for key, value in error.fields.items()} \
        if isinstance(error.fields, Mapping) else error.fields
    console = err_console()
    console.print(Text("error: ", style="bold red") + Text(what))
    for line in describe_fields(fields):
        console.print(Text(f"  {line}"))
    raise typer.Exit(2)


def remote_error_message(exc_type: str | None, value: Any) -> str:
    """One line for a nameko ``RemoteError``: its type and what to change."""
    text = str(value or "").strip()
    if exc_type == "ValidationError":
        fields = _fields_of_validation_message(text)
        if fields is not None:
            return f"ValidationError: {'; '.join(describe_fields(fields))}"
    return f"{exc_type}: {' '.join(text.split())}" if text else str(exc_type)


def _fields_of_validation_message(text: str) -> Any:
    """``shared.errors.ValidationError`` travels as ``invalid input: {fields!r}``."""
    _, found, literal = text.partition("invalid input: ")
    if not found:
        return None
    try:
        fields = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return None
    return fields if isinstance(fields, (dict, list)) else None


# -- configuration -----------------------------------------------------------

def user_config(config_path: Path | None = None) -> dict[str, Any]:
    """The nameko config file given on the command line, or ``{}``."""
    path = config_path or state.config_path
    if path is None:
        return {}
    try:
        return read_config_file(path)
    except ValidationError as error:
        fail_invalid(error)


def stand_in_secrets(config: Mapping[str, Any]) -> dict[str, str]:
    """Placeholders for the secrets that neither ``config`` nor the environment sets (they would be generated)."""
    def configured(*keys: str) -> bool:
        return any(config.get(key) or os.environ.get(key) for key in keys)

    stand_ins = {}
    if not configured("CRM_MASTER_KEY"):
        stand_ins["CRM_MASTER_KEY"] = PLACEHOLDER_KEY
    if not configured(PUBLIC_KEY_SETTING, PRIVATE_KEY_SETTING):
        stand_ins[PUBLIC_KEY_SETTING] = PLACEHOLDER_KEY
    return stand_ins


def cli_settings(config_path: Path | None = None, generate_secrets: bool = True) -> Settings:
    """Validated settings of the token issuer; bad values end the command with the field names (exit 2).

    With ``generate_secrets=False`` missing secrets are stood in for, so a
    command that only needs the broker address writes nothing to the data dir.
    """
    config = user_config(config_path)
    if not generate_secrets:
        config.update(stand_in_secrets(config))
    try:
        return load_settings(config, issuer=True)
    except ValidationError as error:
        fail_invalid(error)
    except OSError as error:
        fail(f"cannot prepare the data dir for generated secrets: {error}; "
             f"set CRM_DATA_DIR to a writable directory (crm doctor)", 2)


def issuer_key(settings: Settings) -> Ed25519PrivateKey:
    """The private key tokens are signed with; without one the command ends naming the setting (exit 2)."""
    if settings.token_private_key is None:
        fail(f"{PRIVATE_KEY_SETTING} is not set: only the token issuer's private key signs tokens "
             f"({PUBLIC_KEY_SETTING} only checks them); run this where the issuer key is", 2)
    return settings.token_private_key


def redact(uri: str) -> str:
    """The URI without its password, fit to print."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- calling -----------------------------------------------------------------

def rpc_call(service: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``service.method`` with the CLI's token; failures end the command.

    The token comes from the root ``--token`` option or ``$CRM_TOKEN``. A
    command is sent with a fresh ``command_id``, and every call with the
    deadline the CLI stops waiting at, so a late or redelivered request
    never runs a command the user saw fail.
    """
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    from contracts.catalogue import with_command_id
    from shared.broker import CONNECTION_LOST
    from shared.rpc import DEADLINE_KEY, deadline_after

    token = state.token
    if not token:
        fail(f"no token: pass --token or set {TOKEN_ENV}, e.g. "
             f"export {TOKEN_ENV}=$(crm token --role agent --actor $USER)", 2)
    amqp_uri = cli_settings(generate_secrets=False).amqp_uri
    context = {"authorization": token, DEADLINE_KEY: deadline_after(state.timeout)}
    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=state.timeout, context_data=context) as proxy:
            return getattr(proxy[service], method)(*args, **with_command_id(service, method, kwargs))
    except RemoteError as error:
        fail(remote_error_message(error.exc_type, error.value))
    except UnknownService:
        fail(f"service {service!r} is not running: start it with `crm up` (crm doctor checks the setup)")
    except RpcTimeout:
        fail(f"{service}.{method} did not answer within {state.timeout:g}s: "
             f"is the service running and healthy? (crm up, crm health {service})")
    except Exception as error:  # noqa: BLE001 - any transport failure is reported the same way
        if isinstance(error, CONNECTION_LOST):
            fail(f"cannot reach RabbitMQ at {redact(amqp_uri)}: {error}; run `crm doctor`")
        raise


# -- output ------------------------------------------------------------------

def out_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str))


def _cell(value: Any) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, (dict, list, tuple)):
        return Text(json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": ")))
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    return Text(str(value))


def print_record(record: Mapping[str, Any], title: str | None = None) -> None:
    """One result as ``field  value`` lines (or JSON with ``--json``)."""
    if state.json_output:
        print_json(record)
        return
    table = Table(show_header=False, box=None, title=title, title_justify="left", pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        table.add_row(Text(str(key)), _cell(value))
    out_console().print(table)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Iterable[str | tuple[str, str]] | None = None,
                title: str | None = None) -> None:
    """Rows as a table of ``columns`` (key or (key, header)); JSON with ``--json``."""
    rows = list(rows)
    if state.json_output:
        print_json(rows)
        return
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    pairs = [(column, column) if isinstance(column, str) else column for column in columns]
    table = Table(title=title, title_justify="left")
    for _key, header in pairs:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _header in pairs))
    console = out_console()
    console.print(table)
    if not rows:
        console.print(Text("(no rows)", style="dim"))


def emit(result: Any, title: str | None = None) -> None:
    """Show any RPC result the way its shape suggests."""
    if state.json_output:
        print_json(result)
    elif isinstance(result, Mapping):
        print_record(result, title)
    elif isinstance(result, list) and all(isinstance(row, Mapping) for row in result):
        print_table(result, title=title)
    else:
        typer.echo(result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str))
