"""Who a campaign reaches and when: segments, consent, the send window in the customer's zone, the lifecycle."""

from datetime import date, datetime, timezone

import pytest

from services.campaigns import domain
from shared.errors import Conflict

SHANGHAI = domain.Recipient("c1", "active", "partner", "zh-CN", "Asia/Shanghai", True, ("vip", "beijing"))
WINDOW = {"start": "09:00", "end": "20:00"}
DAY = date(2027, 2, 6)


@pytest.mark.parametrize(("segment", "included"), [
    ({"tiers": [], "tags": [], "locales": []}, True),
    ({"tiers": ["partner", "general"], "tags": [], "locales": []}, True),
    ({"tiers": ["general"], "tags": [], "locales": []}, False),
    ({"tiers": [], "tags": ["vip"], "locales": ["zh-CN"]}, True),
    ({"tiers": [], "tags": ["shanghai"], "locales": []}, False),
    ({"tiers": [], "tags": [], "locales": ["en-US"]}, False),
])
def test_segments_match_by_tier_tag_and_locale(segment, included):
    assert domain.in_segment(segment, SHANGHAI) is included


def test_consent_and_erasure_decide_before_anything_else():
    assert domain.consent_reason(SHANGHAI) is None
    assert domain.consent_reason(domain.Recipient("c2", "active", "general", "zh-CN", "UTC", False)) == "no_consent"
    assert domain.consent_reason(domain.Recipient("c3", "erased", "general", "zh-CN", "UTC", False)) == "erased"


@pytest.mark.parametrize(("utc", "zone", "inside"), [
    (datetime(2027, 2, 6, 1, 0), "Asia/Shanghai", True),       # 09:00 there: the window opens
    (datetime(2027, 2, 6, 0, 59), "Asia/Shanghai", False),     # 08:59
    (datetime(2027, 2, 6, 12, 0), "Asia/Shanghai", False),     # 20:00: closed
    (datetime(2027, 2, 6, 2, 0), "America/New_York", False),   # 21:00 on the 5th there
    (datetime(2027, 2, 6, 15, 0), "America/New_York", True),   # 10:00 on the 6th
    (datetime(2027, 2, 6, 16, 0), "Asia/Shanghai", False),     # 00:00 on the 7th
])
def test_the_send_window_is_on_the_customers_own_clock_and_day(utc, zone, inside):
    assert domain.within_window(WINDOW, zone, DAY, utc.replace(tzinfo=timezone.utc)) is inside


def test_a_window_ending_at_midnight_runs_to_the_end_of_the_day():
    late = datetime(2027, 2, 6, 15, 59, tzinfo=timezone.utc)  # 23:59 in Shanghai
    assert domain.within_window({"start": "00:00", "end": "00:00"}, "Asia/Shanghai", DAY, late)


def test_a_campaign_is_paused_resumed_and_archived_for_good():
    created = domain.fold("k1", [])
    with pytest.raises(Exception):
        domain.decide_pause(created)  # does not exist yet
    state = domain.evolve(created, "CampaignCreated", {"campaign_id": "k1", "name": "n"}, 1, "t")
    assert [e.type for e in domain.decide_pause(state)] == ["CampaignPaused"]
    paused = domain.evolve(state, "CampaignPaused", {}, 2, "t")
    assert domain.decide_pause(paused) == [] and [e.type for e in domain.decide_resume(paused)] == ["CampaignResumed"]
    archived = domain.evolve(paused, "CampaignArchived", {}, 3, "t")
    with pytest.raises(Conflict):
        domain.decide_resume(archived)
    with pytest.raises(Conflict):
        archived.require_sendable()


def test_the_message_key_holds_the_occurrence_so_next_year_is_a_new_message():
    assert domain.message_key("k1", "c1", "spring_festival:2027") != domain.message_key("k1", "c1", "spring_festival:2028")
