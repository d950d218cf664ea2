"""Operating CareCRM from the shell: token, up, serve, health, doctor, contracts.

``crm up`` is the developer's whole system in one command: every discovered
service as its own ``python -m nameko run`` process, against the local
RabbitMQ, with SQLite stores under the data dir. It waits until each one
answers ``health()`` over RPC, then supervises them: a crashed service is
restarted (with backoff), Ctrl-C or SIGTERM stops them all cleanly.

``crm doctor`` checks what ``crm up`` needs and says how to fix what is
missing; its exit code is non-zero when something required is missing.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

import typer
import yaml
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from shared.auth import DEFAULT_TTL_SECONDS, ROLES, issue_token
from shared.cli import rpc
from shared.cli.rpc import (cli_settings, fail, fail_invalid, out_console, print_json,
                            redact, user_config)
from shared.config import Settings, load_settings, read_config_file
from shared.discovery import EXTRA_SERVICES_ENV, ServiceSpec, discovered_services
from shared.errors import ValidationError

REQUIRED_PYTHON = (3, 11)
MANAGEMENT_PORT = 15672
PROBE_TIMEOUT_SECONDS = 3.0
HEALTH_POLL_SECONDS = 0.25
SUPERVISE_POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 20.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0

contracts_app = typer.Typer(help="Contracts: JSON Schema of every event and RPC payload.",
                            no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the operating commands to the root ``crm`` app."""
    app.command("up")(up)
    app.command("serve")(serve)
    app.command("health")(health)
    app.command("doctor")(doctor)
    app.command("token")(token)
    app.add_typer(contracts_app, name="contracts")


def _registry() -> dict[str, ServiceSpec]:
    try:
        return discovered_services()
    except ValidationError as error:
        fail_invalid(error)


def _select(registry: Mapping[str, ServiceSpec], names: Sequence[str], option: str) -> dict[str, ServiceSpec]:
    unknown = [name for name in names if name not in registry]
    if unknown:
        fail(f"{option}: unknown service {', '.join(repr(name) for name in unknown)}; "
             f"registered: {', '.join(registry)}", 2)
    return {name: registry[name] for name in (names or registry)}


# -- crm token ---------------------------------------------------------------

def token(
    role: str = typer.Option(..., "--role", help=f"one of {', '.join(ROLES)}"),
    actor: str = typer.Option(..., "--actor", help="who acts with this token (recorded in every event)"),
    ttl: int = typer.Option(DEFAULT_TTL_SECONDS, "--ttl", help="seconds until the token expires"),
) -> None:
    """Print a signed token for RPC calls (use it with --token or CRM_TOKEN)."""
    settings = cli_settings()
    now = time.time()
    try:
        issued = issue_token(settings.secret, role, actor, ttl, now=now)
    except ValidationError as error:
        fail_invalid(error, "invalid token request", {"role": "--role", "actor": "--actor", "ttl": "--ttl"})
    if rpc.state.json_output:
        print_json({"token": issued, "role": role, "actor": actor,
                    "expires_at": datetime.fromtimestamp(int(now) + ttl, timezone.utc).isoformat()})
    else:
        typer.echo(issued)


# -- crm contracts export ----------------------------------------------------

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


# -- service processes -------------------------------------------------------

DEFAULT_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["console"]},
}


def service_config(settings: Settings, base: Mapping[str, Any]) -> dict[str, Any]:
    """A nameko container config: the user's config file overlaid with the settings."""
    config = {key: value for key, value in base.items() if value is not None}
    config.update(settings.nameko_config())
    config.setdefault("LOGGING", DEFAULT_LOGGING)
    return config


def write_service_config(run_dir: Path, name: str, config: Mapping[str, Any]) -> Path:
    """Write ``run/<name>.yml`` atomically, readable by the owner only (it holds the secrets)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / f"{name}.yml"
    descriptor, temporary = tempfile.mkstemp(dir=run_dir, prefix=f".{name}-", suffix=".yml")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"# generated by crm for the {name} service; edits are overwritten\n")
            yaml.safe_dump(dict(config), handle, sort_keys=True, allow_unicode=True)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def nameko_command(path: str, config_file: Path) -> list[str]:
    return [sys.executable, "-m", "nameko", "run", path, "--config", str(config_file)]


@dataclass
class ServiceProcess:
    """One ``nameko run`` child, its log, and where it is in its life."""

    name: str
    path: str
    config_file: Path
    log_file: Path
    process: subprocess.Popen | None = None
    state: str = "new"  # starting → up; exited children wait in backoff, then start again
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    last_problem: str = ""

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"--- {datetime.now(timezone.utc).isoformat()} crm starts {self.name}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                nameko_command(self.path, self.config_file), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.state = "starting"
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """The exit code once the child has ended (reaping it), else ``None``."""
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        """Signal the child's process group (it leads its own session)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def schedule_restart(self) -> float:
        """Back off 1 s, doubling up to 30 s; a child that ran a minute starts over at 1 s."""
        ran = time.monotonic() - self.started_at
        self.backoff = 1.0 if ran >= STABLE_AFTER_SECONDS or not self.backoff \
            else min(self.backoff * 2, MAX_BACKOFF_SECONDS)
        self.restart_at = time.monotonic() + self.backoff
        self.state = "backoff"
        return self.backoff

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def probe_health(amqp_uri: str, token_value: str, service: str,
                 timeout: float = PROBE_TIMEOUT_SECONDS) -> tuple[bool, Any]:
    """``(True, health)`` if ``service.health()`` answers, else ``(False, why not)``."""
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=timeout,
                             context_data={"authorization": token_value}) as proxy:
            return True, proxy[service].health()
    except UnknownService:
        return False, "not listening yet"
    except RpcTimeout:
        return False, f"no answer within {timeout:g}s"
    except RemoteError as error:
        return False, f"health() failed: {rpc.remote_error_message(error.exc_type, error.value)}"
    except Exception as error:  # noqa: BLE001 - broker trouble is a reason to wait, not to crash
        return False, f"broker: {type(error).__name__}: {error}"


class StopRequested:
    """Set by SIGINT/SIGTERM; a second signal asks to stop without grace."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self, signum: int, _frame: Any) -> None:
        self.count += 1
        self.event.set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


class Supervisor:
    def __init__(self, services: Mapping[str, ServiceSpec], settings: Settings, base_config: Mapping[str, Any],
                 stop: StopRequested, say: Callable[[Text | str], None]):
        self.settings = settings
        self.stop = stop
        self.say = say
        self.run_dir = settings.data_dir / "run"
        self.log_dir = settings.data_dir / "logs"
        config = service_config(settings, base_config)
        self.children = [ServiceProcess(name, spec.service_class, write_service_config(self.run_dir, name, config),
                                        self.log_dir / f"{name}.log")
                         for name, spec in services.items()]

    def _token(self) -> str:
        return issue_token(self.settings.secret, "service", f"crm-up@{socket.gethostname()}", 600)

    def start_all(self) -> None:
        for child in self.children:
            child.start()

    def wait_until_healthy(self, timeout: float) -> bool:
        """Probe each child's ``health()`` until all answer; False on timeout, exit or stop."""
        deadline = time.monotonic() + timeout
        pending = {child.name: child for child in self.children}
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                            console=out_console(), transient=False)
        with progress:
            tasks = {name: progress.add_task(f"{name}: starting", total=1) for name in pending}
            while pending:
                token_value = self._token()
                for name, child in list(pending.items()):
                    code = child.exited()
                    if code is not None:
                        progress.update(tasks[name], description=f"{name}: exited with code {code}")
                        child.last_problem = f"exited with code {code} before it answered health()"
                        return False
                    ok, answer = probe_health(self.settings.amqp_uri, token_value, name, timeout=1.0)
                    if ok:
                        child.state = "up"
                        progress.update(tasks[name], completed=1,
                                        description=f"{name}: up (log position {_position(answer)})")
                        del pending[name]
                    else:
                        child.last_problem = str(answer)
                        progress.update(tasks[name], description=f"{name}: waiting ({answer})")
                if not pending:
                    break
                if time.monotonic() > deadline or self.stop.wait(HEALTH_POLL_SECONDS):
                    return False
        return True

    def supervise(self) -> None:
        """Restart children that exit, until a stop is requested."""
        while not self.stop.wait(SUPERVISE_POLL_SECONDS):
            for child in self.children:
                if child.state in ("starting", "up"):
                    code = child.exited()
                    if code is not None:
                        delay = child.schedule_restart()
                        self.say(Text(f"{child.name} exited with code {code}; restarting in {delay:g}s "
                                      f"(log: {child.log_file})", style="yellow"))
                    elif child.state == "starting":
                        ok, _ = probe_health(self.settings.amqp_uri, self._token(), child.name, timeout=1.0)
                        if ok:
                            child.state = "up"
                            self.say(Text(f"{child.name} is up again (pid {child.pid})", style="green"))
                elif child.state == "backoff" and time.monotonic() >= child.restart_at:
                    child.restarts += 1
                    child.start()

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL the rest."""
        running = [child for child in self.children if child.exited() is None]
        for child in running:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        signals_seen = self.stop.count
        while any(child.exited() is None for child in running):
            if time.monotonic() > deadline or self.stop.count > max(signals_seen, 1):
                break
            time.sleep(0.05)
        for child in running:
            if child.exited() is None:
                self.say(Text(f"{child.name} did not stop in time; killing it", style="yellow"))
                child.signal(signal.SIGKILL)
                child.process.wait()
        for child in running:
            self.say(f"stopped {child.name} (exit code {child.exited()})")


def _position(health_answer: Any) -> Any:
    return health_answer.get("log_position", "?") if isinstance(health_answer, Mapping) else "?"


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
) -> None:
    """Start every service against the local RabbitMQ and supervise them until Ctrl-C."""
    chosen = _select(_registry(), [name.strip() for name in services.split(",") if name.strip()], "--services")
    settings = cli_settings(config)
    settings = dataclasses.replace(settings, data_dir=settings.data_dir.resolve())
    base_config = user_config(config)
    broker = check_broker(settings.amqp_uri)
    if broker.status == "fail":
        fail(f"{broker.detail}. {broker.fix}")
    console = out_console()
    lock = _lock_data_dir(settings.data_dir / "run")
    stop = StopRequested()
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor(chosen, settings, base_config, stop, console.print)
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
    console.print(table)


# -- crm serve ---------------------------------------------------------------

def serve(
    name: str = typer.Argument(..., help="the service to run"),
    config: Path | None = typer.Option(None, "--config", help="nameko config.yml (${VAR:default} substitution)"),
) -> None:
    """Run one service in the foreground (for containers and process managers)."""
    spec = _select(_registry(), [name], "NAME")[name]
    settings = cli_settings(config)
    config_file = write_service_config(settings.data_dir / "run", name,
                                       service_config(settings, user_config(config)))
    command = nameko_command(spec.service_class, config_file)
    sys.stdout.flush()
    os.execv(command[0], command)


# -- crm health --------------------------------------------------------------

def health(
    names: list[str] = typer.Argument(None, help="services to ask (default: all registered)"),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="seconds to wait for each answer"),
) -> None:
    """Ask services for health() over RPC; exit 1 if one does not answer.

    Without --token/CRM_TOKEN a short-lived `service` token is signed with
    the local secret, so this also serves as a container health check.
    """
    chosen = _select(_registry(), names or [], "NAMES")
    if rpc.state.token:
        token_value, amqp_uri = rpc.state.token, cli_settings(generate_secrets=False).amqp_uri
    else:
        settings = cli_settings()
        token_value = issue_token(settings.secret, "service", f"crm-health@{socket.gethostname()}", 60)
        amqp_uri = settings.amqp_uri
    rows = []
    for name in chosen:
        ok, answer = probe_health(amqp_uri, token_value, name, timeout)
        row = {"service": name, "status": "up" if ok else "down"}
        if ok and isinstance(answer, Mapping):
            row.update(answer)
            row["problem"] = refused_upstreams(answer)
        elif not ok:
            row["problem"] = answer
        rows.append(row)
    if rpc.state.json_output:
        print_json(rows)
    else:
        rpc.print_table([{**row, "lag": _max_lag(row)} for row in rows],
                        ["service", "status", ("log_position", "log"), ("relay_backlog", "unpublished"),
                         ("dead_letters", "dead letters"), ("lag", "projection lag"), "problem"])
    if any(row["status"] != "up" for row in rows):
        raise typer.Exit(1)


def refused_upstreams(answer: Mapping[str, Any]) -> str:
    """What a healthy answer still reports: projections refusing a replaced upstream log."""
    projections = answer.get("projections")
    if not isinstance(projections, Mapping):
        return ""
    refused = sorted({f"{name} refuses {upstream}" for name, view in projections.items() if isinstance(view, Mapping)
                      for upstream in view.get("forked") or {}})
    return "; ".join(refused) + " (its log was replaced: crm rebuild)" if refused else ""


def _max_lag(row: Mapping[str, Any]) -> Any:
    projections = row.get("projections")
    if isinstance(projections, Mapping) and projections:
        return max((view.get("lag", 0) for view in projections.values() if isinstance(view, Mapping)), default=0)
    return None


# -- crm doctor --------------------------------------------------------------

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
    missing = [key for key in ("CRM_SECRET", "CRM_MASTER_KEY") if not (config.get(key) or os.environ.get(key))]
    if not missing:
        return Check("secrets", "ok", "CRM_SECRET and CRM_MASTER_KEY are configured")
    generated = data_dir / "secrets.json"
    production = "for production set CRM_SECRET and CRM_MASTER_KEY (32 random bytes, base64) in the environment"
    if generated.exists():
        return Check("secrets", "note", f"{', '.join(missing)} not set: using development secrets generated in "
                                        f"{generated}", production)
    if writable_dir_problem(data_dir) is None:
        return Check("secrets", "note", f"{', '.join(missing)} not set: development secrets will be generated "
                                        f"into {generated} on first use", production)
    return Check("secrets", "fail", f"{', '.join(missing)} not set, and the data dir cannot hold generated ones",
                 "set CRM_SECRET and CRM_MASTER_KEY, or make CRM_DATA_DIR writable")


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
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
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


def run_checks(config_path: Path | None = None) -> list[Check]:
    """Every check of ``crm doctor``, in the order a user would fix them."""
    checks = [check_python()]
    try:
        registry = discovered_services()
    except ValidationError as error:
        fix = f"fix {EXTRA_SERVICES_ENV} (name=module:Class, comma-separated)" \
            if EXTRA_SERVICES_ENV in error.fields else "fix the entry point named, then pip install -e '.[dev]'"
        checks.append(Check("services", "fail", "; ".join(rpc.describe_fields(error.fields)), fix))
        registry = {}
    config: dict[str, Any] = {}
    path = config_path or rpc.state.config_path
    if path is not None:
        try:
            config = read_config_file(path)
        except ValidationError as error:
            checks.append(Check("config", "fail", "; ".join(rpc.describe_fields(error.fields)),
                                "fix the path given to --config"))
    stand_ins = {key: rpc.PLACEHOLDER_KEY for key in ("CRM_SECRET", "CRM_MASTER_KEY")
                 if not (config.get(key) or os.environ.get(key))}
    try:
        settings = load_settings({**config, **stand_ins})
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
    services = list(dict.fromkeys([*registry, *settings.database_urls]))
    checks.extend(check_database(service, settings.database_url(service)) for service in services)
    for spec in registry.values():
        checks.append(check_service_code(spec))
        checks.append(check_service_cli(spec))
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
