"""``crm up`` for real: ``nameko run`` children on the real RabbitMQ, SQLite under tmp_path.

Each test gets its own RabbitMQ virtual host, so the services it starts
(named like the real ones) never meet those of another run on the same
broker. The tests wait for conditions with deadlines; ``crm up`` is stopped
with SIGTERM as a process manager would, and its children must be gone.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import TokenVerifier, issue_token
from shared.config import load_settings
from shared.discovery import installed_services
from shared.service_tokens import service_audience
from shared.token_keys import public_keys
from tests.support import private_vhost, wait_for

ROOT = Path(__file__).resolve().parents[2]
ISSUER_KEY = Ed25519PrivateKey.from_private_bytes(b"integration-issuer-key-32-bytes!")
MASTER_KEY = base64.b64encode(b"integration-master-key-32-bytes!").decode()
START_SECONDS = 90
STOP_SECONDS = 60

PROBE_SERVICE = '''
    """A minimal service with the project's auth: what crm up needs to supervise."""
    import os

    import eventlet
    from nameko.rpc import rpc

    from shared.auth import ROLES, Authorization, allow


    class ProbeService:
        name = "probe"
        auth = Authorization()

        @rpc
        @allow(*ROLES)
        def health(self):
            return {"service": "probe", "pid": os.getpid(), "log_position": 0,
                    "issuer_key_in_environment": "CRM_TOKEN_PRIVATE_KEY" in os.environ}

        @rpc
        @allow("admin")
        def crash(self):
            eventlet.spawn_after(0.2, os._exit, 3)
            return os.getpid()
'''


# -- broker isolation ------------------------------------------------------------

@pytest.fixture
def broker_uri() -> Iterator[str]:
    """A fresh virtual host on the test broker, deleted afterwards."""
    with private_vhost(f"crm-test-{uuid.uuid4().hex[:12]}") as uri:
        yield uri


# -- helpers -----------------------------------------------------------------------

def crm_command() -> list[str]:
    installed = shutil.which("crm", path=str(Path(sys.executable).parent))
    return [installed] if installed else [sys.executable, "-c", "from shared.cli.app import main; main()"]


def crm_env(tmp_path: Path, broker_uri: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CRM_") or key == "CRM_TEST_POSTGRES_URL"}
    env.update({"AMQP_URI": broker_uri, "CRM_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "modules"), str(ROOT),
                                                            os.environ.get("PYTHONPATH")]))})
    env.update(extra)
    return env


def wait_until(condition: Callable[[], Any], seconds: float, what: str, crm_up: subprocess.Popen,
               log: Path) -> Any:
    """Wait for ``condition``; fail at once, with crm up's log, if crm up dies meanwhile."""
    def alive_and_met() -> Any:
        if crm_up.poll() is not None:
            pytest.fail(f"crm up exited with {crm_up.returncode} while waiting for {what}:\n{log.read_text()}")
        return condition()

    try:
        return wait_for(alive_and_met, timeout=seconds, interval=0.2, what=what)
    except AssertionError as timed_out:
        pytest.fail(f"{timed_out}; crm up said:\n{log.read_text()}")


def health_of(broker_uri: str, token: str, service: str) -> Any:
    """``service.health()`` if it answers now, else ``None``."""
    try:
        with ClusterRpcProxy({"AMQP_URI": broker_uri}, timeout=2, context_data={"authorization": token}) as rpc:
            return rpc[service].health()
    except (UnknownService, RpcTimeout, RemoteError):
        return None


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_crm_up(crm_up: subprocess.Popen, log: Path) -> int:
    crm_up.send_signal(signal.SIGTERM)
    try:
        return crm_up.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"crm up did not stop within {STOP_SECONDS}s of SIGTERM:\n{log.read_text()}")


@pytest.fixture
def crm_up_process() -> Iterator[list]:
    """Processes started by a test; anything still running at the end is killed with its children."""
    started: list[tuple[subprocess.Popen, list[int]]] = []
    yield started
    for process, known_children in started:
        children = set(known_children) | set(children_of(process.pid))
        if process.poll() is None:
            process.kill()
            process.wait()
        for child in children:
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# -- tests ---------------------------------------------------------------------------

def test_crm_up_starts_supervises_and_stops_a_service(tmp_path, broker_uri, crm_up_process):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "crm_probe_service.py").write_text(textwrap.dedent(PROBE_SERVICE))
    env = crm_env(tmp_path, broker_uri, CRM_MASTER_KEY=MASTER_KEY,
                  CRM_TOKEN_PRIVATE_KEY=base64.b64encode(ISSUER_KEY.private_bytes_raw()).decode(),
                  CRM_EXTRA_SERVICES="probe=crm_probe_service:ProbeService")
    log = tmp_path / "crm-up.log"
    with open(log, "wb") as output:
        crm_up = subprocess.Popen([*crm_command(), "up", "--services", "probe", "--timeout", str(START_SECONDS)],
                                  stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    crm_up_process.append((crm_up, []))
    token = issue_token(ISSUER_KEY, "admin", "integration-test", ["probe"])

    first = wait_until(lambda: health_of(broker_uri, token, "probe"), START_SECONDS, "health() answer", crm_up, log)
    assert children_of(crm_up.pid) == [first["pid"]]
    assert first["issuer_key_in_environment"] is False  # crm up holds the issuer key; its services never do
    crm_up_process[-1][1].append(first["pid"])
    wait_until(lambda: "all services are up" in log.read_text(), 30, "ready message", crm_up, log)

    # the CLI's own health check answers too, with a token it signs itself
    health = subprocess.run([*crm_command(), "--json", "health", "probe"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)[0]["status"] == "up"

    # a second crm up on the same data dir refuses instead of doubling every service
    second = subprocess.run([*crm_command(), "up", "--services", "probe"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr

    # a crashed service is restarted
    with ClusterRpcProxy({"AMQP_URI": broker_uri}, timeout=10, context_data={"authorization": token}) as rpc:
        assert rpc.probe.crash() == first["pid"]
    restarted = wait_until(lambda: (answer := health_of(broker_uri, token, "probe")) and
                           answer["pid"] != first["pid"] and answer, 60, "restarted service", crm_up, log)
    crm_up_process[-1][1].append(restarted["pid"])
    assert children_of(crm_up.pid) == [restarted["pid"]]
    assert not is_alive(first["pid"])

    assert stop_crm_up(crm_up, log) == 0
    for pid in (first["pid"], restarted["pid"]):
        assert not is_alive(pid), f"service process {pid} outlived crm up"
    output = log.read_text()
    data_dir = tmp_path / "data"
    assert str(data_dir) in output
    assert str(data_dir / "logs") in output
    assert "probe exited with code 3; restarting" in output
    assert "stopped probe (exit code 0)" in output
    assert "starts probe" in (data_dir / "logs" / "probe.log").read_text()


def test_crm_up_runs_every_registered_service(tmp_path, broker_uri, crm_up_process):
    env = crm_env(tmp_path, broker_uri)  # no secrets: crm up generates development ones
    log = tmp_path / "crm-up.log"
    with open(log, "wb") as output:
        crm_up = subprocess.Popen([*crm_command(), "up", "--timeout", str(START_SECONDS)],
                                  stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    crm_up_process.append((crm_up, []))
    secrets_file = tmp_path / "data" / "secrets.json"
    wait_until(lambda: secrets_file.exists() and secrets_file.stat().st_size > 0, 60, "generated secrets",
               crm_up, log)
    issued = subprocess.run([*crm_command(), "token", "--role", "admin", "--actor", "integration-test"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    generated_public_keys = public_keys(json.loads(secrets_file.read_text())["token_public_key"])
    services = installed_services()
    for name in services:
        assert TokenVerifier(generated_public_keys, name).verify(token).role == "admin"
    for name in services:
        health = wait_until(lambda name=name: health_of(broker_uri, token, name), START_SECONDS, f"{name} health()",
                            crm_up, log)
        assert health["service"] == name
        assert health["log_position"] >= 0
    children = children_of(crm_up.pid)
    crm_up_process[-1][1].extend(children)
    assert len(children) == len(services)
    for name in services:
        assert (tmp_path / "data" / f"{name}.db").exists()
        service_file = yaml.safe_load((tmp_path / "data" / "run" / f"{name}.yml").read_text())
        assert "CRM_TOKEN_PRIVATE_KEY" not in service_file  # the service's config holds nothing that signs
        assert load_settings(service_file, environ={}).token_private_key is None
        own = jwt.decode(service_file["CRM_SERVICE_TOKEN"], options={"verify_signature": False})
        assert (own["sub"], own["role"], own["aud"]) == (name, "service", service_audience(services[name]))
        assert (tmp_path / "data" / "logs" / f"{name}.log").exists()
        # each service gets its own generated signing key, and everyone's public keys
        assert stat.S_IMODE((tmp_path / "data" / "signing" / f"{name}.key").stat().st_mode) == 0o600
        config = yaml.safe_load((tmp_path / "data" / "run" / f"{name}.yml").read_text())
        assert [key for key in config if key.endswith("_SIGNING_KEY")] == [f"CRM_{name.upper()}_SIGNING_KEY"]
        assert set(config["CRM_SERVICE_KEYS"]) >= set(services)

    assert stop_crm_up(crm_up, log) == 0
    for pid in children:
        assert not is_alive(pid), f"service process {pid} outlived crm up"
    for name in services:
        assert f"stopped {name} (exit code 0)" in log.read_text()
