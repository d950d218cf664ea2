"""Service processes: started with their config and log, stopped with grace, killed when they will not go."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from shared.processes import ServiceProcess, service_environment, stop_processes, write_service_config
from tests.support import wait_for

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
                  "time.sleep(60)"


def child(tmp_path, name: str, *command: str) -> ServiceProcess:
    """A ServiceProcess whose child is ``command`` instead of ``nameko run``, started as ``start`` would."""
    service = ServiceProcess(name, "unused:Unused", tmp_path / f"{name}.yml", tmp_path / f"{name}.log")
    service.process = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
    return service


def test_a_service_that_cannot_import_exits_and_its_log_says_why(tmp_path):
    config = write_service_config(tmp_path / "run", "ghost", {"AMQP_URI": "amqp://guest:guest@127.0.0.1:1/"})
    service = ServiceProcess("ghost", "no_such_module_anywhere:Ghost", config, tmp_path / "logs" / "ghost.log")
    assert service.exited() is None and service.pid is None  # not started yet
    service.start()
    wait_for(lambda: service.exited() is not None, timeout=60, interval=0.1, what="nameko run to give up")
    tail = service.log_tail()  # nameko run exits 0 here: the log is what tells
    assert "crm starts ghost" in tail and "no_such_module_anywhere" in tail


def test_stop_asks_all_at_once_and_kills_only_those_that_stay(tmp_path):
    polite = [child(tmp_path, f"polite{n}", sys.executable, "-c", "import time; time.sleep(60)") for n in range(2)]
    stubborn = child(tmp_path, "stubborn", sys.executable, "-c", IGNORES_SIGTERM)
    assert stubborn.process.stdout.readline() == b"ready\n"
    began = time.monotonic()
    killed = stop_processes([*polite, stubborn], grace=1.0)
    assert killed == [stubborn]
    assert 1.0 <= time.monotonic() - began < 10
    assert all(service.exited() is not None for service in (*polite, stubborn))


def test_an_interrupted_stop_kills_at_once(tmp_path):
    stubborn = child(tmp_path, "stubborn", sys.executable, "-c", IGNORES_SIGTERM)
    assert stubborn.process.stdout.readline() == b"ready\n"
    assert stop_processes([stubborn], grace=60, interrupted=lambda: True) == [stubborn]
    assert stubborn.exited() is not None


def test_a_second_ctrl_c_while_waiting_still_kills_the_children(tmp_path):
    stubborn = child(tmp_path, "stubborn", sys.executable, "-c", IGNORES_SIGTERM)
    assert stubborn.process.stdout.readline() == b"ready\n"

    def ctrl_c() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stop_processes([stubborn], grace=60, interrupted=ctrl_c)
    assert stubborn.exited() is not None


def test_service_processes_never_inherit_the_token_issuers_private_key(monkeypatch):
    monkeypatch.setenv("CRM_TOKEN_PRIVATE_KEY", "the issuer's")
    monkeypatch.setenv("CRM_MASTER_KEY", "kept")
    environment = service_environment()
    assert "CRM_TOKEN_PRIVATE_KEY" not in environment and environment["CRM_MASTER_KEY"] == "kept"
