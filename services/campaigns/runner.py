"""The dependency that runs campaigns in the background, once per run across replicas.

``start`` spawns a run in a managed thread of the service container; the
run holds the lease ``campaign-run:<run_id>`` (``shared.leases``) while it
works, so a second trigger, or the timer on another replica, joins it
instead of running it twice. A run whose holder died (its lease lapsed)
is resumed by the next trigger of its campaign and day, by ``resume``,
or by the timer (``resume_unfinished``). Calls to the customers service
(``reveal_contacts``, ``due_birthdays``) go through one client with the
service's own token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

from nameko.extensions import DependencyProvider
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.campaigns import deliveries, domain, runs
from services.campaigns.channels import Retry, make_channel
from services.campaigns.projection import campaign_list
from services.campaigns.settings import CONFIG_KEY, load_settings
from shared.auth import Principal
from shared.commands import AggregateKind
from shared.config import load_settings as load_crm_settings
from shared.event_log import EventLog
from shared.eventstore.envelope import CommandContext, new_id, utc_now_iso
from shared.eventstore.store import Appended
from shared.leases import Lease, LeaseKeeper, owner_id
from shared.upstream_client import UpstreamClient

log = logging.getLogger(__name__)

TIMER_PRINCIPAL = Principal("campaigns-timer", "service")
REVEAL_TIMEOUT_SECONDS = 60.0
PREVIEW_SAMPLE = 200


@dataclass(frozen=True)
class RunState:
    run_id: str
    version: int = 0


def _run_answer(run: RunState, appended: Appended | None) -> dict[str, Any]:
    return {"run_id": run.run_id, "version": appended.version if appended is not None else run.version,
            "status": "started"}


RUN = AggregateKind(name="campaign run", stream_of=domain.run_stream_of,
                    fold=lambda run_id, envelopes: RunState(run_id, len(envelopes)), answer=_run_answer)


class CampaignRunner(DependencyProvider):
    """Starts, resumes and previews runs; gives workers itself."""

    def setup(self) -> None:
        self.settings = load_settings(self.container.config.get(CONFIG_KEY))
        crm = load_crm_settings(self.container.config)
        self.data_dir = crm.data_dir
        # a run's plans ahead each wait on a reveal, and the next birthday page is fetched beside them
        self.customers = UpstreamClient(crm.amqp_uri, crm.service_token, timeout=REVEAL_TIMEOUT_SECONDS,
                                        connections=runs.PLANS_AHEAD + 1)
        self.retry = Retry(self.settings["retry"]["attempts"], self.settings["retry"]["backoff_seconds"])
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.customers.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx) -> "CampaignRunner":
        return self

    @property
    def store(self):
        return next(dependency for dependency in self.container.dependencies
                    if isinstance(dependency, EventLog)).store

    # -- what a run needs -----------------------------------------------------------------

    def occasion(self, campaign: domain.Campaign, on_date: date) -> runs.Occasion:
        channel = make_channel(campaign.definition["channel"], self.data_dir, self.settings, self.retry)
        return runs.Occasion(campaign, on_date, self.settings, channel)

    def reveal(self, customer_ids: list[str]) -> dict[str, Any]:
        return self.customers.call("customers", "reveal_contacts", customer_ids, "care_messages")

    def due_birthdays(self, on_date: date, after: str | None) -> dict[str, Any]:
        return self.customers.call("customers", "due_birthdays", on_date.isoformat(), self.settings["feb29"], after)

    def campaign(self, campaign_id: str) -> domain.Campaign:
        return domain.fold(campaign_id, self.store.read_stream(domain.stream_of(campaign_id)))

    # -- runs --------------------------------------------------------------------------------

    def launch(self, now: Callable[[], datetime], campaign: domain.Campaign, on_date: date, run_id: str,
              context: CommandContext, lease: Lease | None = None) -> None:
        """Note the run and work through it in the background."""
        try:
            with self.store.engine.begin() as connection:
                deliveries.start_run(connection, run_id, campaign.campaign_id, on_date.isoformat(), utc_now_iso())
        except IntegrityError:
            pass  # noted already: a repeated trigger, or a resumed run
        self.container.spawn_managed_thread(lambda: self._execute(now, campaign, on_date, run_id, context, lease))

    def join_unfinished(self, now: Callable[[], datetime], campaign: domain.Campaign,
                        on_date: date) -> dict[str, Any] | None:
        """An unfinished run of the campaign on the day: resumed here if nobody holds it, else joined."""
        for row in deliveries.unfinished_runs(self.store.engine, campaign.campaign_id, on_date.isoformat()):
            lease = self._lease(row["run_id"])
            if lease.acquire():
                self.launch(now, campaign, on_date, row["run_id"], self._context_of(row["run_id"]), lease)
                return {"run_id": row["run_id"], "status": "resumed"}
            return {"run_id": row["run_id"], "status": "running"}
        return None

    def resume_unfinished(self, now: Callable[[], datetime], campaign_id: str | None = None) -> list[str]:
        """Resume every unfinished run (of one campaign) that nobody works on and whose campaign is active."""
        resumed = []
        for row in deliveries.unfinished_runs(self.store.engine, campaign_id):
            campaign = self.campaign(row["campaign_id"])
            if campaign.status != "active":
                continue
            lease = self._lease(row["run_id"])
            if lease.acquire():
                self.launch(now, campaign, date.fromisoformat(row["on_date"]), row["run_id"],
                           self._context_of(row["run_id"]), lease)
                resumed.append(row["run_id"])
        return resumed

    def trigger_due_birthdays(self, now: Callable[[], datetime], principal: Principal) -> list[str]:
        """Start a run for each active birthday campaign and day that has someone to greet right now.

        Customers' todays span three UTC dates; a run is started only when a
        customer of that day is inside the window and not greeted yet, so the
        timer's ticks cost a query, not a run.
        """
        started = []
        moment = now()
        with self.store.engine.connect() as connection:
            campaign_ids = list(connection.execute(select(campaign_list.c.campaign_id).where(
                campaign_list.c.kind == "birthday", campaign_list.c.status == "active")).scalars())
        for campaign_id in campaign_ids:
            campaign = self.campaign(campaign_id)
            for offset in (-1, 0, 1):
                on_date = moment.date() + timedelta(days=offset)
                if campaign.status != "active" or not self._someone_due(campaign, on_date, moment):
                    continue
                if self.join_unfinished(now, campaign, on_date) is None:
                    run_id = new_id()
                    context = CommandContext(principal.actor_id, principal.role)
                    self.store.append(domain.run_stream_of(run_id), [domain.run_started(
                        run_id, {"campaign_id": campaign_id, "on_date": on_date.isoformat()})], 0, context)
                    self.launch(now, campaign, on_date, run_id, context)
                    started.append(run_id)
        return started

    def _someone_due(self, campaign: domain.Campaign, on_date: date, moment: datetime) -> bool:
        occasion = self.occasion(campaign, on_date)
        window = campaign.definition["send_window"]
        for batch in runs.recipients(self.store.engine, occasion, self.due_birthdays, self.settings["batch_size"]):
            ready = [r for r in batch if domain.consent_reason(r) is None
                     and domain.within_window(window, r.timezone, on_date, moment)]
            claimed = deliveries.already_claimed(self.store.engine, [occasion.key(r.customer_id) for r in ready])
            if any(occasion.key(r.customer_id) not in claimed for r in ready):
                return True
        return False

    def _execute(self, now: Callable[[], datetime], campaign: domain.Campaign, on_date: date, run_id: str,
                 context: CommandContext, lease: Lease | None) -> None:
        lease = lease or self._lease(run_id)
        if not lease.held and not lease.acquire():
            return  # another replica works on it
        stop_keeping = threading.Event()
        keeper = LeaseKeeper(lease)
        self.container.spawn_managed_thread(lambda: keeper.keep(stop_keeping))
        try:
            run = runs.Run(run_id, self.occasion(campaign, on_date), self.store, context, self.reveal,
                           self.due_birthdays, now, lambda: self.campaign(campaign.campaign_id).status == "active",
                           self.settings["batch_size"])
            counts = run.execute()
            log.info("campaign run %s: %s", run_id, counts)
        except Exception:  # the run stays unfinished; the next trigger or timer tick resumes it
            log.exception("campaign run %s stopped by an error; it will be resumed", run_id)
        finally:
            stop_keeping.set()
            lease.release()

    def _lease(self, run_id: str) -> Lease:
        """The run's lease, under an owner name of its own: two executions here never share one."""
        return Lease(self.store.engine, f"campaign-run:{run_id}", f"{owner_id(self)}:{new_id()}")

    def _context_of(self, run_id: str) -> CommandContext:
        """A resumed run appends as the one who started it, under the start's correlation id."""
        started = self.store.read_stream(domain.run_stream_of(run_id))[:1]
        if not started:
            return CommandContext(TIMER_PRINCIPAL.actor_id, TIMER_PRINCIPAL.role)
        first = started[0]
        return CommandContext(first.actor["id"], first.actor["role"], first.correlation_id, first.event_id)

    # -- preview -----------------------------------------------------------------------------

    def preview(self, moment: datetime, campaign: domain.Campaign, on_date: date, limit: int) -> dict[str, Any]:
        """What a run would do now (or, for another day than the customer's today, inside the window)."""
        occasion = self.occasion(campaign, on_date)
        recipients, skips = [], []
        would_send, skipped = 0, {}
        for batch in runs.recipients(self.store.engine, occasion, self.due_birthdays, self.settings["batch_size"]):
            planned = runs.plan(self.store.engine, occasion, batch, moment, self.reveal, preview=True)
            would_send += len(planned.messages)
            for reason, count in planned.counted.items():
                skipped[reason] = skipped.get(reason, 0) + count
            for customer_id, reason in planned.skips:
                skipped[reason] = skipped.get(reason, 0) + 1
                if len(skips) < limit:
                    skips.append({"customer_id": customer_id, "reason": reason})
            for message in planned.messages[:max(0, limit - len(recipients))]:
                recipients.append({"customer_id": message.customer_id, "address": runs.mask(message.address),
                                   "text": message.text})
        return {"campaign_id": campaign.campaign_id, "on_date": on_date.isoformat(),
                "occurrence": occasion.occurrence, "would_send": would_send, "skipped": skipped,
                "recipients": recipients, "skips": skips}
