"""``crm up``'s supervisor: start the chosen services, wait until each answers, restart crashes.

Each service runs as its own ``nameko run`` process (``shared.processes``)
with a config generated from the settings, holding the issuer's public key
and the service's own token, never the issuer's private key. A service that exits is started
again after a backoff, so one that cannot start does not spin, while one
that crashed after a long, healthy run comes back at once.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from shared.auth import issue_token
from shared.cli.health import probe_health
from shared.cli.rpc import fail_invalid, out_console
from shared.config import Settings, is_owner_url_key
from shared.discovery import ServiceSpec
from shared.errors import ValidationError
from shared.processes import ServiceProcess, stop_processes, write_service_config
from shared.service_tokens import issue_service_token
from shared.token_keys import PRIVATE_KEY_SETTING

HEALTH_POLL_SECONDS = 0.25
SUPERVISE_POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 20.0
FIRST_RESTART_SECONDS = 0.1  # a service that ran fine and died is back at once: its leases lapse in 1.5 s
CRASH_LOOP_SECONDS = 1.0  # one that dies this soon after each start waits longer each time, up to
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 10.0
PROBE_TOKEN_TTL_SECONDS = 600

DEFAULT_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["console"]},
}


def service_config(settings: Settings, base: Mapping[str, Any], spec: ServiceSpec,
                   issuer: Ed25519PrivateKey | None) -> dict[str, Any]:
    """The nameko container config of ``spec``'s service: the user's config file overlaid with the settings.

    The issuer's private key never goes in, nor an owner URL (only ``crm
    migrate`` connects as a database's owner). The service's own token does:
    issued with ``issuer`` when given, else the one the settings hold. So do
    its own event signing key and every service's public keys.
    """
    config = {key: value for key, value in base.items()
              if value is not None and key != PRIVATE_KEY_SETTING and not is_owner_url_key(key)}
    config.update(settings.nameko_config())
    if issuer is not None:
        config["CRM_SERVICE_TOKEN"] = issue_service_token(issuer, spec)
    try:
        config.update(settings.signing.nameko_config(spec.name))
    except ValidationError as error:
        fail_invalid(error)
    config.setdefault("LOGGING", DEFAULT_LOGGING)
    return config


def with_metrics_port(config: Mapping[str, Any], first_port: int | None, index: int) -> dict[str, Any]:
    """The config of the ``index``-th service, serving metrics on ``first_port + index`` if given."""
    from shared.metrics import PORT_KEY  # imported here: `crm` starts without loading nameko

    return dict(config) if first_port is None else {**config, PORT_KEY: first_port + index}


@dataclass
class SupervisedProcess(ServiceProcess):
    """A service process ``crm up`` starts again after it exits, and where it is in that cycle."""

    state: str = "new"  # starting → up; exited children wait in backoff, then start again
    restart_at: float = 0.0
    backoff: float = 0.0
    last_problem: str = ""

    def start(self) -> None:
        super().start()
        self.state = "starting"

    def schedule_restart(self) -> float:
        """Restart at once after a stable run; in a crash loop wait 1 s, doubling up to 30 s.

        A child counts as stable once it ran ``STABLE_AFTER_SECONDS``, so a
        service killed now and then is back within a fraction of a second,
        and only one that keeps dying right after its start is slowed down.
        """
        ran = time.monotonic() - self.started_at
        if ran >= STABLE_AFTER_SECONDS:
            self.backoff = FIRST_RESTART_SECONDS
        else:
            self.backoff = min(max(self.backoff * 2, CRASH_LOOP_SECONDS), MAX_BACKOFF_SECONDS)
        self.restart_at = time.monotonic() + self.backoff
        self.state = "backoff"
        return self.backoff


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
    """The children of one ``crm up``, each with a config file under ``run/`` and a log under ``logs/``."""

    def __init__(self, services: Mapping[str, ServiceSpec], settings: Settings, base_config: Mapping[str, Any],
                 issuer: Ed25519PrivateKey, stop: StopRequested, say: Callable[[Text | str], None],
                 metrics_port: int | None = None):
        self.settings = settings
        self.issuer = issuer
        self.stop = stop
        self.say = say
        self.run_dir = settings.data_dir / "run"
        self.log_dir = settings.data_dir / "logs"
        self.children: list[SupervisedProcess] = []
        for index, (name, spec) in enumerate(services.items()):
            config = with_metrics_port(service_config(settings, base_config, spec, issuer), metrics_port, index)
            self.children.append(SupervisedProcess(name, spec.service_class,
                                                   write_service_config(self.run_dir, name, config),
                                                   self.log_dir / f"{name}.log"))

    def _token(self) -> str:
        return issue_token(self.issuer, "service", f"crm-up@{socket.gethostname()}",
                           [child.name for child in self.children], PROBE_TOKEN_TTL_SECONDS)

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
                    child.start()

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL the rest.

        The signal that asked ``crm up`` to stop is already counted; one more
        means the user will not wait, so the rest are killed at once.
        """
        running = [child for child in self.children if child.exited() is None]
        signals_seen = self.stop.count
        killed = stop_processes(running, grace, interrupted=lambda: self.stop.count > max(signals_seen, 1))
        for child in killed:
            self.say(Text(f"{child.name} did not stop in time; killing it", style="yellow"))
        for child in running:
            self.say(f"stopped {child.name} (exit code {child.exited()})")


def _position(health_answer: Any) -> Any:
    return health_answer.get("log_position", "?") if isinstance(health_answer, Mapping) else "?"
