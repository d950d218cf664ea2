"""campaigns — care messages (客户关怀): birthday and holiday greetings, exactly once (docs/campaigns.md).

Campaign commands go through the shared command path (``shared.commands``);
``trigger`` records ``CampaignRunStarted`` the same way and hands the run
to ``CampaignRunner``, which works through it in the background and can be
followed with ``run_status``. Who may be greeted comes from the service's
own projection of the customers' events; contacts are revealed in batches
at send time and never stored. A leased timer triggers due birthday
campaigns and resumes runs that a stopped replica left unfinished.
"""

from __future__ import annotations

from pathlib import Path

from shared.rpc import rpc

from contracts import campaigns as contract
from services.campaigns import domain, templates, views
from services.campaigns.aggregate import CAMPAIGN
from services.campaigns.occasions import holiday_date
from services.campaigns.projection import CampaignList, CareDirectory
from services.campaigns.runner import RUN, TIMER_PRINCIPAL, CampaignRunner
from services.campaigns.settings import DEFAULT_TIMER_SECONDS, TIMER_SECONDS_KEY
from shared.auth import Authorization, allow
from shared.clock import Clock
from shared.commands import Repository
from shared.erasure import DestroyDataKeyOnErasure
from shared.errors import ValidationError
from shared.event_log import EventLog
from shared.eventstore.envelope import new_id
from shared.log_endpoints import LogEndpoints
from shared.timers import leased_timer
from shared.validation import load_call

MIGRATIONS = Path(__file__).parent / "migrations"
OPERATORS = ("operator", "admin")
READERS = ("operator", "agent", "supervisor", "auditor", "admin")
BIRTHDAY_TIMER_LEASE = "campaigns.birthdays"


class CampaignsService(LogEndpoints):
    name = "campaigns"

    auth = Authorization()
    clock = Clock()
    log = EventLog(consumers=[CareDirectory, CampaignList, DestroyDataKeyOnErasure], migrations=MIGRATIONS)
    campaigns = Repository(CAMPAIGN)
    runs = Repository(RUN)
    runner = CampaignRunner()

    # -- commands ----------------------------------------------------------------

    @rpc
    @allow(*OPERATORS)
    def create(self, *args, **kwargs):
        """A birthday or holiday campaign; templates are checked in the sandbox now, not at send time."""
        command = load_call(contract.Create(), args, kwargs)
        problems = {index: {"body": found} for index, template in enumerate(command["templates"])
                    if (found := templates.check(template["body"]))}
        if problems:
            raise ValidationError({"templates": problems})
        return self.campaigns.create(new_id(), command,
                                     lambda campaign: domain.decide_create(campaign.campaign_id, command))

    @rpc
    @allow(*OPERATORS)
    def pause(self, *args, **kwargs):
        """Stop sending: a run in progress stops after its current batch."""
        command = load_call(contract.ChangeStatus(), args, kwargs)
        return self.campaigns.change(command["campaign_id"], command, domain.decide_pause)

    @rpc
    @allow(*OPERATORS)
    def resume(self, *args, **kwargs):
        """Send again; runs the pause stopped carry on where they were."""
        command = load_call(contract.ChangeStatus(), args, kwargs)
        answer = self.campaigns.change(command["campaign_id"], command, domain.decide_resume)
        self.runner.resume_unfinished(self.clock.now, command["campaign_id"])
        return answer

    @rpc
    @allow(*OPERATORS)
    def archive(self, *args, **kwargs):
        command = load_call(contract.ChangeStatus(), args, kwargs)
        return self.campaigns.change(command["campaign_id"], command, domain.decide_archive)

    @rpc
    @allow(*OPERATORS)
    def trigger(self, *args, **kwargs):
        """Start (or join) the run of a campaign on a day; answers its ``run_id`` at once.

        An unfinished run of the same campaign and day is resumed or, if a
        replica is working on it, joined, instead of starting another.
        """
        command = load_call(contract.Trigger(), args, kwargs)
        campaign = self.campaigns.load(command["campaign_id"])
        campaign.require_sendable()
        on_date = views.day(command["on_date"])
        self._require_occurrence(campaign, on_date)
        joined = self.runner.join_unfinished(self.clock.now, campaign, on_date)
        if joined is not None:
            return joined
        started = self.runs.create(new_id(), command, lambda run: [domain.run_started(run.run_id, command)])
        self.runner.launch(self.clock.now, campaign, on_date, started["run_id"], self.log.context(self.principal))
        return started

    # -- reads -----------------------------------------------------------------------

    @rpc
    @allow(*READERS)
    def get(self, *args, **kwargs):
        campaign = self.campaigns.load(load_call(contract.GetCampaign(), args, kwargs)["campaign_id"])
        return views.campaign_view(campaign)

    @rpc
    @allow(*READERS)
    def list(self, *args, **kwargs):
        query = load_call(contract.ListCampaigns(), args, kwargs)
        return views.list_campaigns(self.log.store.engine, query)

    @rpc
    @allow(*READERS)
    def preview(self, *args, **kwargs):
        """Who would get what on ``on_date``, rendered, and who would be skipped and why; writes nothing here.

        The window is checked only if ``on_date`` is the customer's today;
        for another day the preview shows what a run inside the window
        would do. Contacts are revealed to render, which the customers
        service records.
        """
        query = load_call(contract.Preview(), args, kwargs)
        campaign = self.campaigns.load(query["campaign_id"])
        campaign.require_exists()
        on_date = views.day(query["on_date"])
        self._require_occurrence(campaign, on_date)
        return self.runner.preview(self.clock.now(), campaign, on_date, query["limit"])

    @rpc
    @allow(*READERS)
    def run_status(self, *args, **kwargs):
        """A run's progress: status, total to examine if known, counts queued, sent, failed and skipped by reason."""
        run_id = load_call(contract.RunStatus(), args, kwargs)["run_id"]
        return views.run_view(self.log.store.engine, run_id)

    # -- timer -------------------------------------------------------------------------

    @leased_timer(BIRTHDAY_TIMER_LEASE, interval=DEFAULT_TIMER_SECONDS, config_key=TIMER_SECONDS_KEY)
    def birthday_tick(self):
        """Resume runs left unfinished, and trigger birthday campaigns due on any customer's today."""
        self.runner.resume_unfinished(self.clock.now)
        self.runner.trigger_due_birthdays(self.clock.now, TIMER_PRINCIPAL)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _require_occurrence(campaign: domain.Campaign, on_date) -> None:
        holiday = campaign.definition["holiday"]
        if campaign.definition["kind"] == "holiday" and holiday_date(holiday, on_date.year) != on_date:
            raise ValidationError({"on_date": [f"{holiday} falls on {holiday_date(holiday, on_date.year)} in "
                                               f"{on_date.year}, not on {on_date}"]})

