"""A RabbitMQ node of the test's own, on free ports, so a fault test can stop and start a real broker.

The node runs the machine's ``rabbitmq-server`` with its own name, data
directory and ports, and no plugins; stopping it is what a broker restart
is to its clients: every connection dropped, the port closed until it
starts again, and only durable queues and persistent messages kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BrokerNode:
    """One RabbitMQ node: ``start`` and ``stop`` it as often as the test needs; its data outlives a stop."""

    def __init__(self, home: Path):
        self.name = f"crm-e2e-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.home = home
        config = home / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (home / "enabled_plugins").write_text("[].\n")
        (home / "conf.d").mkdir()
        self.environment = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONFIG_FILES": str(home / "conf.d"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "pid"),
        }
        shutil.chown(home, "rabbitmq", "rabbitmq")  # the server drops to the rabbitmq user
        for path in home.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.environment, check=True, timeout=START_SECONDS)
        self._ctl("wait", str(self.home / "pid"), "--timeout", str(START_SECONDS))

    def stop(self) -> None:
        """Shut the whole node down, as ``systemctl stop rabbitmq-server`` does."""
        self._ctl("shutdown")

    def _ctl(self, *args: str) -> None:
        result = subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args], env=self.environment,
                                capture_output=True, text=True, timeout=START_SECONDS + 10)
        if result.returncode != 0:
            log = "\n".join(path.read_text(errors="replace")[-2000:] for path in (self.home / "log").glob("*.log"))
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name} failed: {result.stderr.strip()}\n{log}")


@contextlib.contextmanager
def broker_node() -> Iterator[BrokerNode]:
    """A started node, shut down and removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="crm-rabbit-"))
    node = BrokerNode(home)
    try:
        node.start()
        yield node
    finally:
        with contextlib.suppress(RuntimeError):
            node.stop()
        shutil.rmtree(home, ignore_errors=True)
