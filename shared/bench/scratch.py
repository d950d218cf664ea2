"""Throwaway resources the bench creates for itself and removes afterwards.

A PostgreSQL database ``crm_bench_<uuid>`` on the server of the given URL
(whose own database is used only to connect), and, where ``rabbitmqctl``
can, a RabbitMQ virtual host ``crm_bench_<uuid>`` so that the bench's
services and events never meet anyone else's on a shared broker.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from typing import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RABBITMQCTL_TIMEOUT = 30


def scratch_name() -> str:
    return f"crm_bench_{uuid.uuid4().hex}"


@contextlib.contextmanager
def throwaway_postgres(server_url: str) -> Iterator[tuple[str, str]]:
    """Yield (URL of a fresh database, server version); drop the database afterwards."""
    from sqlalchemy import create_engine, text  # imported here: `crm` starts fast
    from sqlalchemy.engine import make_url

    server = make_url(server_url).set(drivername="postgresql+psycopg2")
    name = scratch_name()
    admin = create_engine(server, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0,
                          connect_args={"connect_timeout": 5}, hide_parameters=True)
    try:
        with admin.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar_one()
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False), version
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def throwaway_vhost(amqp_uri: str) -> Iterator[tuple[str, str | None]]:
    """Yield (AMQP URI on a fresh vhost, None) or (``amqp_uri``, why the broker is shared).

    The vhost needs ``rabbitmqctl`` on this machine with the right to use it;
    without it the bench runs on the URI's own vhost and says so.
    """
    parts = urlsplit(amqp_uri)
    user = parts.username or "guest"
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        yield amqp_uri, "no rabbitmqctl for a local broker: ran on the URI's vhost, shared with other clients"
        return
    name = scratch_name()
    try:
        rabbitmqctl(ctl, "add_vhost", name)
        rabbitmqctl(ctl, "set_permissions", "-p", name, user, ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError) as error:
        problem = f"could not create a RabbitMQ vhost ({error}): ran on the URI's vhost, shared with other clients"
    else:
        problem = None
    if problem is not None:
        _delete_vhost(ctl, name)
        yield amqp_uri, problem
        return
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name, safe=""))), None
    finally:
        _delete_vhost(ctl, name)


def rabbitmqctl(ctl: str, *args: str) -> None:
    """Run ``rabbitmqctl`` quietly; a failure raises."""
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=RABBITMQCTL_TIMEOUT)


def _delete_vhost(ctl: str, name: str) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rabbitmqctl(ctl, "delete_vhost", name)
