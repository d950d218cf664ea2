"""Campaign figures: a birthday campaign run over many customers through the file sink.

The customers and campaigns services run under ``nameko run``, each in its
own process with its own SQLite file. Registering 100,000 customers through
RPC would take minutes and measure ``register``, not a campaign, so the
customers' log is seeded in bulk before the services start: the very events
``register`` appends (``CustomerRegistered`` with the PII sealed under a
data key per customer, hash-chained and signed with the customers service's
key), one append per customer through the event store. At start the
customers service's directory and the campaigns service's own directory
catch up on them (not timed). Every customer consents to care messages and
was born on today's date, in Asia/Shanghai, so one run greets them all.

* ``campaign_send_per_s``: messages sent per second, from ``trigger`` to the
  run reported completed (``due_birthdays``, ``reveal_contacts`` in batches
  of 500 on the customers side, claims, events and the file sink included);
* ``campaign_peak_rss_mb``: the campaigns process's peak resident memory
  (``VmHWM`` in ``/proc/<pid>/status``), read after the run;
* ``campaign_rerun_s`` and ``campaign_rerun_ratio``: a second trigger the
  same day sends nothing; its time and its share of the first run's. It
  starts once the campaigns service has relayed and projected the first
  run's events, so it is not timed doing the first run's background work.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from kombu import Connection

from contracts.customers import PII_FIELDS
from shared.bench.rpc_figures import new_cluster, serving
from shared.bench.store_figures import BenchError, Phase
from shared.bench.workload import QUICK, Sizes
from shared.config import load_settings
from shared.crypto import KeyRing
from shared.discovery import service_spec
from shared.eventstore.envelope import CommandContext, NewEvent, new_id
from shared.eventstore.store import EventStore

TOKEN_ROLE = "admin"
ZONE = "Asia/Shanghai"
RUN_TIMEOUT_S = 600.0
CATCH_UP_TIMEOUT_S = 900.0
POLL_S = 0.1
SEED_ACTOR = CommandContext("crm-bench", "admin")


def silent_phase(_description: str, _total: int) -> Callable[[int], None]:
    return lambda _steps: None


def seed_customers(config: dict[str, Any], count: int, birthday: str, tick: Callable[[int], None]) -> None:
    """Append ``count`` registrations to the customers' log as ``register`` would, before it starts."""
    settings = load_settings(config)
    store = EventStore.open(settings.database_url("customers"), settings.signing.signer("customers"))
    keys = KeyRing(store.engine, settings.master_key)
    try:
        for number in range(count):
            customer_id = new_id()
            stream = f"customer-{customer_id}"  # services.customers.domain.stream_of
            data = {"customer_id": customer_id, "name": f"客户{number}", "phone": f"139{number:08d}",
                    "email": f"bench{number}@example.com", "birthday": birthday, "birthday_calendar": "gregorian",
                    "locale": "zh-CN", "timezone": ZONE, "tier": "general", "tags": ["bench"],
                    "consents": ["care_messages"]}
            sealed = keys.create(customer_id).seal_fields(data, PII_FIELDS, stream)
            store.append(stream, [NewEvent("CustomerRegistered", sealed)], 0, SEED_ACTOR)
            if number % 1000 == 999:
                tick(1000)
        tick(count % 1000)
    finally:
        store.close()


def wait_caught_up(proxy: Any, timeout: float = CATCH_UP_TIMEOUT_S) -> float:
    """Seconds until customers' directory and every campaigns consumer (the erasure keys' too) applied the customers' log."""
    began = time.perf_counter()
    head = proxy.customers.health()["log_position"]
    while True:
        own = proxy.customers.health()["projections"]
        theirs = proxy.campaigns.health()
        followers = [*theirs["projections"].values(), *theirs["reactions"].values()]
        if all(p["lag"] == 0 for p in own.values()) and \
                all(f["positions"].get("customers", head) >= head for f in followers):
            return time.perf_counter() - began
        if time.perf_counter() - began > timeout:
            raise BenchError(f"the directories did not catch up on {head} customers within {timeout:.0f}s")
        time.sleep(1.0)


def wait_delivered(amqp_uri: str, service: str, upstream: str, timeout: float = CATCH_UP_TIMEOUT_S) -> None:
    """Until the broker has handed ``service`` every ``upstream`` event it queued for it.

    A directory that caught up by pulling pages still gets each event once
    more from its queue, as a duplicate; the seeded backlog must be gone
    before the clock starts, or the run is timed acknowledging it.
    """
    queue = f"evt-{upstream}-#--{service}.on_upstream_event"  # nameko's name for ``upstream_event_handler``
    began = time.perf_counter()
    with Connection(amqp_uri) as connection:
        channel = connection.default_channel
        while channel.queue_declare(queue=queue, passive=True).message_count:
            if time.perf_counter() - began > timeout:
                raise BenchError(f"{service} still had {upstream} events queued after {timeout:.0f}s")
            time.sleep(POLL_S)


def wait_quiet(proxy: Any, timeout: float = RUN_TIMEOUT_S) -> None:
    """Until campaigns has relayed its log and every consumer has applied both logs to their heads."""
    began = time.perf_counter()
    while True:
        heads = {"customers": proxy.customers.health()["log_position"]}
        health = proxy.campaigns.health()
        heads["campaigns"] = health["log_position"]
        consumers = [*health["projections"].values(), *health["reactions"].values()]
        if health["relay_backlog"] == 0 and all(position >= heads[upstream] for consumer in consumers
                                                for upstream, position in consumer["positions"].items()):
            return
        if time.perf_counter() - began > timeout:
            raise BenchError(f"campaigns did not settle within {timeout:.0f}s: {health}")
        time.sleep(POLL_S)


def timed_run(proxy: Any, campaign_id: str, on_date: str) -> tuple[dict[str, Any], float]:
    began = time.perf_counter()
    run_id = proxy.campaigns.trigger(campaign_id, on_date)["run_id"]
    while True:
        status = proxy.campaigns.run_status(run_id)
        if status["status"] != "running":
            return status, time.perf_counter() - began
        if time.perf_counter() - began > RUN_TIMEOUT_S:
            raise BenchError(f"campaign run {run_id} not finished after {RUN_TIMEOUT_S:.0f}s: {status}")
        time.sleep(POLL_S)


def peak_rss_mb(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        return None
    return None


def campaigns_figures(amqp_uri: str, workdir: Path | None = None, sizes: Sizes = QUICK,
                      phase: Phase = silent_phase) -> dict[str, Any]:
    """Seed, start customers and campaigns, run a campaign twice, and stop them whatever happens."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="crm-bench-campaigns-") as scratch:
            return campaigns_figures(amqp_uri, Path(scratch), sizes, phase)
    count = sizes.campaign_customers
    cluster = new_cluster(amqp_uri, workdir / "data", TOKEN_ROLE,
                          CAMPAIGNS={"birthday_timer_seconds": 3600, "frequency_cap": {"messages": 100, "days": 1}})
    specs = [service_spec("customers"), service_spec("campaigns")]
    today = datetime.now(ZoneInfo(ZONE)).date()
    birthday = today.replace(year=1985) if (today.month, today.day) != (2, 29) else today.replace(year=1984)
    seed_customers(cluster.config_for(specs[0]), count, birthday.isoformat(), phase("Campaigns: seed customers", count))
    processes: list[Any] = []
    with serving(cluster, workdir, [(spec, cluster.config_for(spec)) for spec in specs], phase, "Campaigns",
                 processes, ready_timeout=CATCH_UP_TIMEOUT_S) as proxy:
        catching_up = phase("Campaigns: directories catch up", 1)
        catch_up_s = wait_caught_up(proxy)
        wait_delivered(amqp_uri, "campaigns", "customers")
        catching_up(1)
        campaign_id = proxy.campaigns.create(name="生日问候 (bench)", kind="birthday", channel="file",
                                             templates=[{"body": "{{ name }}，生日快乐！"}],
                                             send_window={"start": "00:00", "end": "00:00"})["campaign_id"]
        running = phase("Campaigns: run twice", 2)
        first, first_s = timed_run(proxy, campaign_id, today.isoformat())
        wait_quiet(proxy)  # the first run's background work done before the second starts
        running(1)
        second, second_s = timed_run(proxy, campaign_id, today.isoformat())
        running(1)
        peak_mb = peak_rss_mb(next(process.pid for process in processes if process.name == "campaigns"))
    if first["sent"] != count or second["sent"] != 0:
        raise BenchError(f"expected {count} messages then none, got {first['sent']} then {second['sent']}: "
                         f"{first} / {second}")
    return {"campaign_customers": count, "campaign_send_per_s": first["sent"] / first_s,
            "campaign_run_s": first_s, "campaign_peak_rss_mb": peak_mb,
            "campaign_rerun_s": second_s, "campaign_rerun_ratio": second_s / first_s,
            "campaign_directory_catch_up_s": catch_up_s}
