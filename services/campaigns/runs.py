"""A campaign run: who is greeted, in batches, exactly once per message key.

A run goes through the campaign's candidates in batches of up to 500
customers (holiday campaigns: the segment, from the service's own
directory; birthday campaigns: the ids the customers service says have
their birthday on the day). For each batch, in this order:

1. ``plan`` (the next batch's plan, with its reveal, runs while this
   batch is written): skip those the directory says are erased or do not consent,
   those whose message key is already claimed (``already_sent``), those
   whose clock is not on the day inside the send window
   (``outside_window``) and those over the frequency cap; reveal the
   contacts of the rest in one ``customers.reveal_contacts`` call (no
   contact for the channel: ``no_contact``) and render their messages;
2. claim the keys in ``care_messages`` (a unique key: of two runs, one
   wins each message);
3. append ``CareMessageQueued`` listing the claimed keys and
   ``CareMessageSkipped`` listing the final skips (``outcomes``), in one
   append to the run's stream;
4. deliver through the channel (retried with back-off);
5. append ``CareMessageSent`` / ``CareMessageFailed`` listing the
   messages of each outcome, then mark the keys in ``care_messages``.

Through a channel that can be read back (the file sink), step 3 is left
out and the skips go into step 5's append: the sink's own record stands
for the queueing, so a batch costs an event or a few per outcome.

``outside_window`` and ``already_sent`` are not final for the customer
(a later run in the window sends; a sent message stays sent), so they are
counted in the run, not logged per customer: a second run of a day costs
a few queries per batch and no reveal.

A run killed part-way is resumed (``reconcile``): keys it claimed without
an outcome in its stream are looked up in the channel; what the channel
proves delivered is recorded sent, what the file sink did not get is sent
again, and what SMTP or a webhook may or may not have received is
recorded failed as ``interrupted`` (never sent twice).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import deque

import eventlet
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Callable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, or_, select
from sqlalchemy.engine import Engine

from services.campaigns import deliveries, domain, outcomes, templates
from services.campaigns.channels import Channel, Outcome, Outgoing
from services.campaigns.occasions import holiday_label, occurrence_of
from services.campaigns.deliveries import care_messages
from services.campaigns.projection import care_directory
from shared.eventstore.envelope import CommandContext, NewEvent, utc_now_iso
from shared.eventstore.store import EventStore
from shared.eventstore.tables import events
from shared.sql_lists import among

log = logging.getLogger(__name__)

# Batches planned while one is written: each plan waits mostly on the customers service's reveal, so a
# few at once keep both services busy. Batches hold distinct customers, so their plans do not overlap.
PLANS_AHEAD = 3
PROGRESS_SECONDS = 0.25  # a run saves its counts for run_status at most this often (its stream has them all)
REFUSAL_REASONS = {"erased": "erased", "no_consent": "no_consent", "unknown": "no_contact"}
CUT_OFF = Outcome(False, 1, "interrupted: the run stopped between sending and recording; not sent again")
Reveal = Callable[[list[str]], dict[str, Any]]
DueBirthdays = Callable[[date, str | None], dict[str, Any]]


@dataclass
class Plan:
    """What a batch comes to: messages to send, final skips, and skips only counted."""

    messages: list[Outgoing] = field(default_factory=list)
    skips: list[tuple[str, str]] = field(default_factory=list)  # (customer_id, reason)
    counted: dict[str, int] = field(default_factory=dict)  # outside_window, already_sent
    examined: int = 0

    def count(self, reason: str) -> None:
        self.counted[reason] = self.counted.get(reason, 0) + 1


@dataclass(frozen=True)
class Occasion:
    """A campaign on a day, with everything needed to plan its batches."""

    campaign: domain.Campaign
    on_date: date
    settings: Mapping[str, Any]
    channel: Channel
    _forms: dict[tuple[str, str], templates.Form | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def definition(self) -> Mapping[str, Any]:
        return self.campaign.definition

    @cached_property
    def occurrence(self) -> str:
        """Worked out once: every message key of the run names it."""
        return occurrence_of(self.definition["kind"], self.definition["holiday"], self.on_date)

    def key(self, customer_id: str) -> str:
        return domain.message_key(self.campaign.campaign_id, customer_id, self.occurrence)

    def form(self, tier: str, locale: str) -> templates.Form | None:
        """The template a tier and locale get, rendered once per run for what they share."""
        if (tier, locale) not in self._forms:
            template = templates.choose(self.definition["templates"], tier, locale)
            holiday = holiday_label(self.definition["holiday"], locale) if self.definition["holiday"] else ""
            self._forms[tier, locale] = None if template is None else templates.Form.of(
                template["body"], {"tier": tier, "holiday": holiday, "date": self.on_date.isoformat()}, locale)
        return self._forms[tier, locale]


def recipients(engine: Engine, occasion: Occasion, due_birthdays: DueBirthdays, batch_size: int,
               run_id: str | None = None) -> Iterator[list[domain.Recipient]]:
    """The campaign's candidates in the segment, ``batch_size`` at a time, in customer id order.

    A run (``run_id``) is not given customers whose message another run
    has claimed, or that it has settled itself, so a re-run reads only what
    is left (``already_claimed_elsewhere`` counts them). While no message
    of the occasion is claimed there is nothing to leave out, and the
    directory is read without that anti-join: a run started alongside is
    caught by ``plan``'s lookup and by the claim.
    """
    segment = occasion.definition["segment"]
    query = select(*_RECIPIENT_COLUMNS)
    if segment["tiers"]:
        query = query.where(care_directory.c.tier.in_(segment["tiers"]))
    if segment["locales"]:
        query = query.where(care_directory.c.locale.in_(segment["locales"]))
    if run_id is not None and _any_claimed(engine, occasion):
        query = query.where(~exists(_claimed_elsewhere(occasion, run_id)
                                    .where(care_messages.c.customer_id == care_directory.c.customer_id)))
    if occasion.definition["kind"] == "holiday":
        yield from _directory_pages(engine, query, segment, batch_size)
        return
    if run_id is not None and _none_left(engine, query):
        return  # every customer of the segment is claimed: no birthday the customers service names can be new
    page, following = due_birthdays(occasion.on_date, None), None
    try:
        while True:
            # The customers service finds the next page while this one is looked up here.
            following = eventlet.spawn(due_birthdays, occasion.on_date, page["next"]) if page["next"] else None
            with engine.connect() as connection:
                rows = connection.execute(query.where(among(care_directory.c.customer_id, page["customer_ids"],
                                                             engine.dialect.name))
                                          .order_by(care_directory.c.customer_id)).all()
            found = [recipient for recipient in map(_recipient, rows) if domain.in_segment(segment, recipient)]
            for start in range(0, len(found), batch_size):
                yield found[start:start + batch_size]
            if following is None:
                return
            page, following = following.wait(), None
    finally:
        if following is not None:
            following.kill()  # the run stopped or failed: the page ahead is not needed


def _any_claimed(engine: Engine, occasion: Occasion) -> bool:
    """Whether any run has claimed a message of the occasion (a probe of ``ix_care_messages_occasion``)."""
    with engine.connect() as connection:
        return connection.execute(select(care_messages.c.message_key).where(
            care_messages.c.campaign_id == occasion.campaign.campaign_id,
            care_messages.c.occurrence == occasion.occurrence).limit(1)).first() is not None


def _none_left(engine: Engine, query) -> bool:
    """Whether the directory holds no candidate for ``query`` (a re-run of a finished day finds none)."""
    with engine.connect() as connection:
        return connection.execute(query.limit(1)).first() is None


def _claimed_elsewhere(occasion: Occasion, run_id: str):
    """Claims of the occasion's messages that are not this run's own unsettled ones.

    Campaign, occasion and customer name a message key, and are the
    ledger's index ``ix_care_messages_occasion``: the anti-join in
    ``recipients`` probes it per directory row instead of reading every
    claim of the occasion for each batch.
    """
    return select(care_messages.c.message_key).where(
        care_messages.c.campaign_id == occasion.campaign.campaign_id,
        care_messages.c.occurrence == occasion.occurrence,
        or_(care_messages.c.run_id != run_id, care_messages.c.status != "queued"))


def already_claimed_elsewhere(engine: Engine, occasion: Occasion, run_id: str) -> int:
    """How many of the occasion's messages other runs had claimed: a run counts them ``already_sent``."""
    claimed = _claimed_elsewhere(occasion, run_id).where(care_messages.c.run_id != run_id).subquery()
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(claimed)).scalar_one()


def _directory_pages(engine: Engine, query, segment, batch_size: int) -> Iterator[list[domain.Recipient]]:
    after = ""
    while True:
        with engine.connect() as connection:
            rows = connection.execute(query.where(care_directory.c.customer_id > after)
                                      .order_by(care_directory.c.customer_id).limit(batch_size)).all()
        if not rows:
            return
        after = rows[-1].customer_id
        yield [recipient for recipient in map(_recipient, rows) if domain.in_segment(segment, recipient)]


_RECIPIENT_COLUMNS = [care_directory.c[name] for name in domain.Recipient._fields]


def _recipient(row: Any) -> domain.Recipient:
    *known, tags = row  # in ``_RECIPIENT_COLUMNS`` order: unpacked, not looked up by name per field
    return domain.Recipient(*known, _tags(tags))


@functools.lru_cache(maxsize=1024)
def _tags(stored: str) -> tuple[str, ...]:
    """A directory row's tags: customers share a few sets, so each stored text is parsed once."""
    return tuple(json.loads(stored))


def plan(engine: Engine, occasion: Occasion, batch: Sequence[domain.Recipient], now: datetime,
         reveal: Reveal, run_id: str | None = None, preview: bool = False) -> Plan:
    """What to do for a batch, writing nothing.

    Keys this same run claimed but never settled (a resumed run) count as
    its own, not as ``already_sent``. A ``preview`` checks the window only
    for customers whose today is the day (another day is shown as a run
    inside its window would go) and masks the names in the texts.
    """
    result = Plan(examined=len(batch))
    remaining = []
    for recipient in batch:
        reason = domain.consent_reason(recipient)
        if reason:
            result.skips.append((recipient.customer_id, reason))
        else:
            remaining.append(recipient)
    claimed = deliveries.already_claimed(engine, [occasion.key(r.customer_id) for r in remaining])
    own = {key for key, (holder, status) in claimed.items() if holder == run_id and status == "queued"}
    window = occasion.definition["send_window"]
    open_ones = []
    for recipient in remaining:
        key = occasion.key(recipient.customer_id)
        if key in claimed and key not in own:
            result.count("already_sent")
        elif not _in_window(window, recipient.timezone, occasion.on_date, now, preview):
            result.count("outside_window")
        else:
            open_ones.append(recipient)
    cap = occasion.settings["frequency_cap"]
    capped = [r.customer_id for r in open_ones if occasion.key(r.customer_id) not in own]
    recent = deliveries.recent_counts(engine, capped, occasion.on_date, cap["days"])
    chosen = []
    for recipient in open_ones:
        if recent.get(recipient.customer_id, 0) >= cap["messages"]:
            result.skips.append((recipient.customer_id, "frequency_cap"))
        else:
            chosen.append(recipient)
    if chosen:
        _render(occasion, chosen, reveal, result, preview)
    return result


def _in_window(window: Mapping[str, str], zone: str, on_date: date, now: datetime, preview: bool) -> bool:
    if preview and now.astimezone(ZoneInfo(zone)).date() != on_date:
        return True
    return domain.within_window(window, zone, on_date, now)


def mask(text: str) -> str:
    """The first character and stars: what an operator sees of a name or an address."""
    return text[:1] + "*" * min(len(text) - 1, 6) if text else text


def _render(occasion: Occasion, chosen: list[domain.Recipient], reveal: Reveal, result: Plan,
            preview: bool) -> None:
    answer = reveal([recipient.customer_id for recipient in chosen])
    for refused in answer["refused"]:
        result.skips.append((refused["customer_id"], REFUSAL_REASONS[refused["reason"]]))
    by_id = {recipient.customer_id: recipient for recipient in chosen}
    opt_out_url = occasion.settings["opt_out_url"]
    for contact in answer["contacts"]:
        recipient = by_id[contact["customer_id"]]
        address = occasion.channel.address(contact)
        form = occasion.form(recipient.tier, recipient.locale)
        if address is None or form is None:
            result.skips.append((recipient.customer_id, "no_contact"))
            continue
        name = contact.get("name") or ""
        text = form.fill({"name": mask(name) if preview else name,
                          "opt_out_url": opt_out_url.format(customer_id=recipient.customer_id)})
        result.messages.append(Outgoing(occasion.key(recipient.customer_id), occasion.campaign.campaign_id,
                                        recipient.customer_id, occasion.occurrence, address,
                                        occasion.definition["name"], text))


# -- running -------------------------------------------------------------------------------

class RunStopped(Exception):
    """The campaign was paused or archived while its run went on: the run stops between batches."""


@dataclass
class Run:
    """One run of a campaign on a day, appending to its own stream ``campaign-run-<run_id>``."""

    run_id: str
    occasion: Occasion
    store: EventStore
    context: CommandContext
    reveal: Reveal
    due_birthdays: DueBirthdays
    clock: Callable[[], datetime]
    still_active: Callable[[], bool]
    batch_size: int = 500

    def __post_init__(self):
        self.stream = domain.run_stream_of(self.run_id)
        self.version = self.store.stream_version(self.stream)
        self.counts = deliveries.empty_counts()
        self.engine = self.store.engine
        self._saved_at = 0.0
        self.campaign_id = self.occasion.campaign.campaign_id

    def execute(self) -> dict[str, Any]:
        """Run (or resume) to the end; the counts."""
        saved = deliveries.run_row(self.engine, self.run_id)
        if saved is not None and saved["status"] == "completed":
            return saved["counts"]
        self._reconcile()
        already = already_claimed_elsewhere(self.engine, self.occasion, self.run_id)
        if already:
            self.counts = deliveries.add_counts(self.counts, {**deliveries.empty_counts(),
                                                              "skipped": {"already_sent": already}})
        ahead: deque = deque()  # plans under way, oldest first: their reveals overlap the writes below
        try:
            for batch in recipients(self.engine, self.occasion, self.due_birthdays, self.batch_size, self.run_id):
                if not self.still_active():
                    raise RunStopped(self.run_id)
                ahead.append(eventlet.spawn(self._plan, batch))
                if len(ahead) > PLANS_AHEAD:
                    self._batch(ahead.popleft().wait())
            while ahead:
                self._batch(ahead.popleft().wait())
        except RunStopped:
            deliveries.save_progress(self.engine, self.run_id, self.counts, status="stopped")
            return self.counts
        finally:
            for planning in ahead:
                planning.kill()  # stopped, failed or killed: plans ahead are not needed (they wrote nothing)
        self._append([NewEvent("CampaignRunCompleted", {"run_id": self.run_id, "campaign_id": self.campaign_id,
                                                        "counts": self.counts})])
        deliveries.save_progress(self.engine, self.run_id, self.counts, status="completed", finished_at=utc_now_iso())
        return self.counts

    def _plan(self, batch: list[domain.Recipient]) -> Plan:
        return plan(self.engine, self.occasion, batch, self.clock(), self.reveal, self.run_id)

    def _batch(self, planned: Plan) -> None:
        """Claim, record, deliver and record the outcome of one planned batch."""
        at = utc_now_iso()
        day = self.occasion.on_date.isoformat()
        owned = deliveries.claim(self.engine, self.run_id, [
            {"message_key": m.message_key, "campaign_id": m.campaign_id, "customer_id": m.customer_id,
             "occurrence": m.occurrence, "day": day} for m in planned.messages], at)
        mine = [m for m in planned.messages if m.message_key in owned]
        for _lost in range(len(planned.messages) - len(mine)):
            planned.count("already_sent")  # another run claimed it first
        fresh = [m.message_key for m in mine if m.message_key not in self._queued]
        skips = outcomes.skipped(self.run_id, self.campaign_id, planned.skips)
        if self.occasion.channel.readable_back:  # the channel's own record stands for the queueing
            self._queued.update(fresh)
            sent, failed = self._deliver(mine, skips)
        else:
            self._append([*outcomes.queued(self.run_id, self.campaign_id, fresh), *skips])
            self._queued.update(fresh)
            sent, failed = self._deliver(mine)
        skipped = dict(planned.counted)
        for _customer, reason in planned.skips:
            skipped[reason] = skipped.get(reason, 0) + 1
        self.counts = deliveries.add_counts(self.counts, {"examined": planned.examined, "queued": len(fresh),
                                                          "sent": sent, "failed": failed, "skipped": skipped})
        if time.monotonic() - self._saved_at >= PROGRESS_SECONDS:
            deliveries.save_progress(self.engine, self.run_id, self.counts)
            self._saved_at = time.monotonic()

    def _deliver(self, messages: list[Outgoing], events: list[NewEvent] | None = None) -> tuple[int, int]:
        """Deliver, then append the outcomes after ``events`` (the batch's skips, through a readable-back channel)."""
        events = list(events or ())
        if not messages:
            self._append(events)
            return 0, 0
        results = self.occasion.channel.deliver(messages)
        self._append([*events, *outcomes.delivered(self.run_id, self.campaign_id, self.occasion.channel.name,
                                                   results)])
        deliveries.settle(self.engine, {key: "sent" if outcome.sent else "failed"
                                        for key, outcome in results.items()}, utc_now_iso())
        sent = sum(1 for outcome in results.values() if outcome.sent)
        return sent, len(results) - sent

    def _reconcile(self) -> None:
        """After a crash: settle what the stream already says, ask the channel about the rest."""
        self._queued: set[str] = set()
        if self.version == 0:
            return
        settled: dict[str, str] = {}
        for event_type, data in self._stream_facts():
            if event_type == "CareMessageQueued":
                self._queued.update(outcomes.message_keys(data))
            elif event_type in ("CareMessageSent", "CareMessageFailed"):
                for key in outcomes.message_keys(data):
                    settled[key] = "sent" if event_type == "CareMessageSent" else "failed"
                    if key not in self._queued:  # recorded by its outcome alone (a readable-back channel)
                        self._queued.add(key)
                        self.counts["queued"] += 1
            outcomes.tally(self.counts, event_type, data)
        open_keys = {key for key, status in deliveries.claimed_by(self.engine, self.run_id).items()
                     if status == "queued"}
        deliveries.settle(self.engine, {key: settled[key] for key in open_keys & settled.keys()}, utc_now_iso())
        unsettled = sorted(open_keys - settled.keys())
        if not unsettled:
            return
        channel = self.occasion.channel
        delivered = channel.delivered(unsettled)
        cut_off = [] if channel.name == "file" else [key for key in unsettled if key not in delivered]
        events = [] if channel.readable_back else outcomes.queued(
            self.run_id, self.campaign_id, [key for key in unsettled if key not in self._queued])
        events += outcomes.delivered(self.run_id, self.campaign_id, channel.name,
                                     {**{key: Outcome(True, 1) for key in unsettled if key in delivered},
                                      **{key: CUT_OFF for key in cut_off}})
        self._append(events)
        if channel.readable_back:  # what the sink holds is recorded by its outcome alone
            self.counts["queued"] += sum(1 for key in delivered if key not in self._queued)
            self._queued.update(delivered)
        else:
            self._queued.update(unsettled)
        for event in events:
            outcomes.tally(self.counts, event.type, event.data)
        deliveries.settle(self.engine, {**{key: "sent" for key in delivered}, **{key: "failed" for key in cut_off}},
                          utc_now_iso())
        # what the file sink did not get stays claimed by this run: the batches below send it again

    def _stream_facts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Type and data of the run's events, streamed: a run of 100,000 messages is too big to load whole."""
        query = (select(events.c.type, events.c.data).where(events.c.stream_id == self.stream)
                 .order_by(events.c.stream_version))
        with self.engine.connect() as connection:
            for event_type, data in connection.execution_options(yield_per=2000).execute(query):
                yield event_type, json.loads(data)

    def _append(self, events: list[NewEvent]) -> None:
        if events:
            self.version = self.store.append(self.stream, events, self.version, self.context).version
