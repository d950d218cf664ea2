"""What CareCRM needs on this machine, each checked on its own with the fix for what is missing.

``crm doctor`` runs them all; ``crm up`` reuses the broker and secrets
checks to refuse early, or to say where development secrets live.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import typer

from shared.cli.rpc import redact, stand_in_secrets
from shared.config import owner_url_key
from shared.discovery import ServiceSpec
from shared.token_keys import PRIVATE_KEY_SETTING, PUBLIC_KEY_SETTING

REQUIRED_PYTHON = (3, 11)
MANAGEMENT_PORT = 15672
PROBE_TIMEOUT_SECONDS = 3.0


@dataclass
class Check:
    """One finding: ``ok``, ``note`` (fine, worth knowing), ``warn`` (optional part), ``fail``."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def check_python(version: Sequence[int] = tuple(sys.version_info[:3])) -> Check:
    found = ".".join(str(part) for part in version)
    if tuple(version[:2]) == REQUIRED_PYTHON:
        return Check("python", "ok", f"Python {found}")
    return Check("python", "fail", f"Python {found}; CareCRM needs Python 3.11",
                 "create the virtual environment with python3.11 -m venv .venv, then pip install -e '.[dev]'")


def check_broker(amqp_uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Check:
    """Open and close one AMQP connection: is a broker there, and are the credentials accepted?"""
    import pika
    import pika.exceptions

    parts = urlsplit(amqp_uri)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    where = f"{parts.hostname}:{port}"
    start_it = ("start RabbitMQ (rabbitmq-server -detached, or docker compose up -d rabbitmq), "
                "or point AMQP_URI at a running broker")
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout).close()
    except OSError as error:
        return Check("broker", "fail", f"no RabbitMQ answers at {where} ({error.strerror or error})", start_it)
    try:
        parameters = pika.URLParameters(amqp_uri)
        parameters.socket_timeout = timeout
        parameters.stack_timeout = timeout * 2
        parameters.blocked_connection_timeout = timeout
        parameters.connection_attempts = 1
        parameters.retry_delay = 0
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.ProbableAuthenticationError:
        return Check("broker", "fail", f"RabbitMQ at {where} refused the credentials of AMQP_URI "
                                       f"({redact(amqp_uri)})",
                     f"fix the user and password in AMQP_URI, or create the user: "
                     f"rabbitmqctl add_user {parts.username or 'USER'} PASSWORD && "
                     f"rabbitmqctl set_permissions -p / {parts.username or 'USER'} '.*' '.*' '.*'")
    except pika.exceptions.ProbableAccessDeniedError:
        vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
        return Check("broker", "fail", f"RabbitMQ at {where} refused access to virtual host {vhost!r}",
                     f"rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} "
                     f"{parts.username or 'USER'} '.*' '.*' '.*', or fix the vhost in AMQP_URI")
    except (pika.exceptions.AMQPError, OSError, ValueError) as error:
        reason = str(error) or type(error).__name__
        return Check("broker", "fail", f"no RabbitMQ answers at {where} ({reason})", start_it)
    return Check("broker", "ok", f"RabbitMQ at {redact(amqp_uri)} accepted the credentials")


def check_management(amqp_uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Check:
    """The management API is optional (dashboards, deploy/ definitions): warn only."""
    parts = urlsplit(amqp_uri)
    url = f"http://{parts.hostname}:{MANAGEMENT_PORT}/api/overview"
    credentials = f"{unquote(parts.username or 'guest')}:{unquote(parts.password or 'guest')}"
    request = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()})
    enable = "rabbitmq-plugins enable rabbitmq_management (optional: dashboards and deploy/definitions.json)"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            overview = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if error.code == 401:
            return Check("management", "warn", f"management API at {url} refused the AMQP_URI credentials",
                         "give the user the 'management' tag: rabbitmqctl set_user_tags USER management")
        return Check("management", "warn", f"management API at {url} answered HTTP {error.code}", enable)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Check("management", "warn", f"no management API at {url} ({reason})", enable)
    version = overview.get("rabbitmq_version", "?") if isinstance(overview, dict) else "?"
    return Check("management", "ok", f"management API at {url} (RabbitMQ {version})")


def writable_dir_problem(path: Path) -> str | None:
    """Why files cannot be created in ``path`` (made if missing), or ``None``."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".crm-doctor-"):
            pass
    except OSError as error:
        return f"cannot create files in {existing}: {error.strerror or error}"
    return None


def check_data_dir(data_dir: Path) -> Check:
    problem = writable_dir_problem(data_dir)
    if problem:
        return Check("data dir", "fail", f"CRM_DATA_DIR {data_dir} is not writable: {problem}",
                     "set CRM_DATA_DIR to a directory you can write, e.g. export CRM_DATA_DIR=$HOME/.crm-data")
    if not data_dir.exists():
        return Check("data dir", "ok", f"{data_dir} (created on first start)")
    return Check("data dir", "ok", f"{data_dir} is writable")


def check_secrets(config: Mapping[str, Any], data_dir: Path) -> Check:
    missing = list(stand_in_secrets(config))
    if not missing:
        return Check("secrets", "ok", "CRM_MASTER_KEY and the token issuer's key are configured")
    generated = data_dir / "secrets.json"
    production = (f"for production set CRM_MASTER_KEY (32 random bytes, base64), {PUBLIC_KEY_SETTING} for the "
                  f"services and {PRIVATE_KEY_SETTING} only where tokens are issued (deploy/runbook.md, Secrets)")
    if generated.exists():
        return Check("secrets", "note", f"{', '.join(missing)} not set: using development secrets generated in "
                                        f"{generated}", production)
    if writable_dir_problem(data_dir) is None:
        return Check("secrets", "note", f"{', '.join(missing)} not set: development secrets will be generated "
                                        f"into {generated} on first use", production)
    return Check("secrets", "fail", f"{', '.join(missing)} not set, and the data dir cannot hold generated ones",
                 f"set CRM_MASTER_KEY and {PUBLIC_KEY_SETTING}, or make CRM_DATA_DIR writable")


def check_database(service: str, url: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Check:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    name = f"{service} store"
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        return Check(name, "fail", f"CRM_{service.upper()}_DATABASE_URL is not a database URL: {error}",
                     "use sqlite:////path/to/file.db or postgresql://user:password@host:5432/dbname")
    shown = redact(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return Check(name, "warn", f"{shown} is in memory: nothing survives a restart",
                         "give the SQLite store a file path, or leave the URL unset to use the data dir")
        problem = writable_dir_problem(Path(parsed.database).parent)
        if problem:
            return Check(name, "fail", f"{shown}: {problem}",
                         "make the directory writable, or set CRM_DATA_DIR / the database URL elsewhere")
        return Check(name, "ok", f"{shown} (SQLite, embedded)")
    if url.startswith("postgresql://"):  # the store's driver for plain URLs (shared/eventstore/engine.py)
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
        parsed = make_url(url)
    connect_args = {"connect_timeout": int(max(1, timeout))} \
        if parsed.get_driver_name() in ("psycopg2", "psycopg") else {}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args, hide_parameters=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        message = " ".join(str(getattr(error, "orig", None) or error).split())
        if "does not exist" in message and "database" in message:
            fix = f"create it: createdb -h {parsed.host or '127.0.0.1'} -U {parsed.username or 'postgres'} " \
                  f"{parsed.database}"
        elif "password" in message or "authentication" in message:
            fix = f"fix the user and password in CRM_{service.upper()}_DATABASE_URL"
        else:
            fix = (f"start PostgreSQL (pg_ctlcluster <version> main start, or docker compose up -d postgres), "
                   f"or unset CRM_{service.upper()}_DATABASE_URL to use SQLite in the data dir")
        return Check(name, "fail", f"{shown} is not reachable: {message[:300]}", fix)
    except Exception as error:  # noqa: BLE001 - a missing driver is a finding too
        return Check(name, "fail", f"{shown}: {type(error).__name__}: {error}",
                     "install the driver: pip install -e '.[dev]'")
    finally:
        engine.dispose()
    return Check(name, "ok", f"{shown} answers")


def check_service_code(spec: ServiceSpec) -> Check:
    try:
        spec.load_class()
    except Exception as error:  # noqa: BLE001 - report any import failure as a finding
        return Check(f"{spec.name} code", "fail",
                     f"{spec.service_class} does not import: {type(error).__name__}: {error}",
                     "install the project (pip install -e '.[dev]') and fix the import error above")
    return Check(f"{spec.name} code", "ok", spec.service_class)


def check_schema(spec: ServiceSpec, url: str) -> Check:
    """Is the service's database at the head of every migration history its code carries?

    Behind is fine where the service's role may migrate (it does so as it
    starts); behind under a restricted role, or at a revision this code does
    not know (a newer release migrated it), keeps the service from starting.
    """
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url

    from shared.database_roles import may_migrate
    from shared.eventstore.engine import database_engine
    from shared.service_migration import histories_of

    name = f"{spec.name} schema"
    database = make_url(url).database or ""
    if url.startswith("sqlite") and not Path(database).exists():
        return Check(name, "ok", f"{database} does not exist yet: the service creates it at head as it starts")
    engine = database_engine(url)
    try:
        with engine.connect() as connection:
            positions = [(history, history.current(connection)) for history in histories_of(spec.load_class())]
            migrates_itself = may_migrate(connection)
    finally:
        engine.dispose()
    behind = []
    for history, current in positions:
        if current is None:
            behind.append(f"{history.version_table} not started")
            continue
        try:
            ScriptDirectory(str(history.location)).get_revision(current)
        except CommandError:
            return Check(name, "fail", f"{history.version_table} is at revision {current}, which this code does "
                                       f"not know: a newer CareCRM migrated the database",
                         "install the release that migrated it, or restore a backup taken before")
        if current != history.head():
            behind.append(f"{history.version_table} at {current}, head {history.head()}")
    if not behind:
        return Check(name, "ok", "at head of " + ", ".join(history.version_table for history, _ in positions))
    if migrates_itself:
        return Check(name, "note", f"behind ({'; '.join(behind)}): the service migrates it as it starts")
    return Check(name, "fail", f"behind ({'; '.join(behind)}) and the service's role may not migrate it",
                 f"run crm migrate {spec.name} with {owner_url_key(spec.name)} set to the owner's URL")


def check_service_cli(spec: ServiceSpec) -> Check:
    name = f"{spec.name} cli"
    if spec.cli is None:
        return Check(name, "note", "no command line yet (its ServiceSpec names no cli)")
    try:
        sub_app = spec.load_cli()
    except Exception as error:  # noqa: BLE001
        return Check(name, "warn", f"{spec.cli} does not import: {type(error).__name__}: {error}",
                     "fix the import error")
    if not isinstance(sub_app, typer.Typer):
        return Check(name, "note", f"{spec.cli} is not a typer app")
    return Check(name, "ok", f"crm {spec.name} ...")
