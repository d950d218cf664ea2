"""Run the bench's parts in order and gather one result.

Each part (SQLite store, PostgreSQL store, RPC, a service's own figures) runs on throwaway resources
and cleans up after itself, also on errors and Ctrl-C. A part that fails
leaves its figures null and its error in the result; the others still run.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from shared.bench import peer_figures
from shared.bench.callbacks import callbacks_figures
from shared.bench.campaigns import campaigns_figures
from shared.bench.complaints import complaints_figures
from shared.bench.recovery import recovery_figures
from shared.bench.report import assemble
from shared.bench.rpc_figures import rpc_figures
from shared.bench.scratch import DEFAULT_POSTGRES_URL, throwaway_postgres, throwaway_vhost
from shared.bench.store_figures import BenchError, Phase, postgres_store_figures, sqlite_store_figures
from shared.bench.workload import DEFAULT, QUICK, Sizes
from shared.config import DEFAULT_AMQP_URI
from shared.discovery import service_spec

PARTS = ("sqlite", "postgres", "rpc", "complaints", "callbacks", "campaigns", "recovery", "audit")


@dataclass(frozen=True)
class Options:
    quick: bool = False
    postgres_url: str = DEFAULT_POSTGRES_URL  # a server: the bench creates its own database there
    amqp_uri: str = DEFAULT_AMQP_URI
    parts: tuple[str, ...] = PARTS
    with_peer: bool = True
    sizes: Sizes | None = None  # overrides the sizes ``quick`` picks

    @property
    def chosen_sizes(self) -> Sizes:
        return self.sizes or (QUICK if self.quick else DEFAULT)


def silent_phase(_description: str, _total: int) -> Callable[[int], None]:
    return lambda _steps: None


@dataclass
class _Run:
    options: Options
    phase: Phase
    workdir: Path
    measured: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def part(self, name: str, measure: Callable[[], None]) -> None:
        try:
            measure()
        except Exception as error:  # noqa: BLE001 - one broken part must not hide the others' figures
            detail = str(error) if isinstance(error, BenchError) else "".join(
                traceback.format_exception_only(type(error), error)).strip()
            self.errors[name] = detail

    def peer(self, env: dict[str, str]) -> peer_figures.PeerStore | None:
        if not self.options.with_peer or peer_figures.UNAVAILABLE:
            return None
        return peer_figures.PeerStore(env)

    def sqlite(self) -> None:
        directory = self.workdir / "sqlite"
        directory.mkdir()
        peer = self.peer(peer_figures.sqlite_env(str(directory / "eventsourcing.db")))
        try:
            self.measured.update(sqlite_store_figures(str(directory), self.options.chosen_sizes, self.phase, peer))
            if peer is not None:
                self.measured["sqlite_synchronous_peer"] = peer.sqlite_synchronous()
        finally:
            if peer is not None:
                peer.close()

    def postgres(self) -> None:
        with throwaway_postgres(self.options.postgres_url) as (url, version):
            self.machine["postgres"] = version
            peer = self.peer(peer_figures.postgres_env(url))
            try:
                self.measured.update(postgres_store_figures(url, self.options.chosen_sizes, self.phase, peer))
            finally:
                if peer is not None:
                    peer.close()

    def rpc(self) -> None:
        with throwaway_vhost(self.options.amqp_uri) as (amqp_uri, shared_broker):
            if shared_broker:
                self.notes.append(shared_broker)
            directory = self.workdir / "rpc"
            directory.mkdir()
            self.measured.update(rpc_figures(amqp_uri, directory, self.options.chosen_sizes, self.phase))

    def complaints(self) -> None:
        with throwaway_vhost(self.options.amqp_uri) as (amqp_uri, _shared_broker):
            directory = self.workdir / "complaints"
            directory.mkdir()
            self.measured.update(complaints_figures(amqp_uri, directory, self.options.chosen_sizes, self.phase))

    def callbacks(self) -> None:
        with throwaway_vhost(self.options.amqp_uri) as (amqp_uri, _shared_broker):
            directory = self.workdir / "callbacks"
            directory.mkdir()
            self.measured.update(callbacks_figures(amqp_uri, directory, self.options.chosen_sizes, self.phase))

    def campaigns(self) -> None:
        with throwaway_vhost(self.options.amqp_uri) as (amqp_uri, _shared_broker):
            directory = self.workdir / "campaigns"
            directory.mkdir()
            self.measured.update(campaigns_figures(amqp_uri, directory, self.options.chosen_sizes, self.phase))

    def recovery(self) -> None:
        with throwaway_vhost(self.options.amqp_uri) as (amqp_uri, shared_broker):
            vhost = None if shared_broker else unquote(urlsplit(amqp_uri).path[1:])
            if vhost is None:
                self.notes.append("catch_up_after_broker_restart_s is null: the bench has no vhost of its own to "
                                  "break without disturbing other clients")
            directory = self.workdir / "recovery"
            directory.mkdir()
            self.measured.update(recovery_figures(amqp_uri, vhost, directory, self.phase))


    def audit(self) -> None:
        """The audit service's own figures (``ServiceSpec.bench``): ledger ingest, replay, verify, proofs."""
        figures = service_spec("audit").load_bench()
        directory = self.workdir / "audit"
        directory.mkdir()
        self.measured.update(figures(directory, self.options.chosen_sizes, self.phase))


def run_bench(options: Options, phase: Phase = silent_phase) -> dict[str, Any]:
    """Measure the chosen parts and return the result ``crm bench --json`` prints."""
    unknown = set(options.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown bench parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as workdir:
        run = _Run(options, phase, Path(workdir), machine=machine_info())
        if options.with_peer and peer_figures.UNAVAILABLE:
            run.notes.append(peer_figures.UNAVAILABLE + ": the append_vs_peer ratios are null")
        elif options.with_peer and run.machine["eventsourcing"] != peer_figures.PEER_VERSION:
            run.notes.append(f"the peer is eventsourcing {run.machine['eventsourcing']}, "
                             f"not {peer_figures.PEER_VERSION} as the targets assume")
        for name in PARTS:
            if name in options.parts:
                run.part(name, getattr(run, name))
        peer_level = run.measured.get("sqlite_synchronous_peer")
        if peer_level is not None and peer_level != run.measured.get("sqlite_synchronous_ours"):
            run.notes.append(_durability_note(run.measured))
    return assemble(run.measured, run.machine, run.notes, run.errors, time.perf_counter() - began, options.quick)


def _durability_note(measured: dict[str, Any]) -> str:
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    ours = names.get(measured.get("sqlite_synchronous_ours"), "?")
    peer = names.get(measured.get("sqlite_synchronous_peer"), "?")
    full = measured.get("append_vs_peer_sqlite_full_sync")
    same = f"; at synchronous={peer} ours is {full:.2f}× the peer" if full and peer == "FULL" else ""
    return f"SQLite durability differs: ours commits with synchronous={ours}, the peer with synchronous={peer}{same}"


def machine_info() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version, "postgres": None, "eventsourcing": peer_figures.installed_version(),
            "eventsourcing_postgres_driver": peer_figures.postgres_driver(), "eventlet_patched": _eventlet_patched()}


def _eventlet_patched() -> bool:
    try:
        from eventlet import patcher
    except ImportError:
        return False
    return bool(patcher.is_monkey_patched("socket"))
