"""The working calendar against hand-worked dates.

Office hours are Asia/Shanghai 09:00-18:00 with lunch 12-13: a full working
day is 8 business hours, 09-12 (3 h) and 13-18 (5 h). The calling window is
09:00-20:00 without a break, in Shanghai or in a customer's own zone.
Holiday and 调休 dates below were read off the State Council notices for
2024 and 2025, independently of the package under test; daylight-saving
dates are those of the US rules (second Sunday of March, first of November).
"""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.errors import ValidationError
from shared.working_calendar import WorkingCalendar, merge_pauses

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
CAL = WorkingCalendar()
CALLING = WorkingCalendar(day_start=time(9), day_end=time(20), breaks=())
CALLING_NEW_YORK = CALLING.in_zone("America/New_York")


def at(year, month, day, hour, minute=0, zone=SHANGHAI):
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def in_new_york(year, month, day, hour, minute=0):
    return at(year, month, day, hour, minute, NEW_YORK)


# --- which days are working days ---------------------------------------------

def test_spring_festival_2024_is_off_and_its_makeup_sundays_are_on():
    # Notice for 2024: 2月10日至17日放假调休，共8天。2月4日（星期日）、2月18日（星期日）上班。
    assert CAL.is_working_day(date(2024, 2, 3)) is False  # ordinary Saturday
    assert CAL.is_working_day(date(2024, 2, 4)) is True  # make-up Sunday
    assert CAL.is_working_day(date(2024, 2, 9)) is True  # Friday, 除夕 not yet a holiday in 2024
    assert not any(CAL.is_working_day(date(2024, 2, d)) for d in range(10, 18))
    assert CAL.is_working_day(date(2024, 2, 18)) is True  # make-up Sunday
    assert CAL.is_working_day(date(2024, 2, 19)) is True


def test_spring_festival_2025_includes_new_years_eve_and_a_makeup_saturday():
    # Notice for 2025: 1月28日（除夕）至2月4日放假，1月26日（周日）、2月8日（周六）上班。
    assert CAL.is_working_day(date(2025, 1, 26)) is True
    assert CAL.is_working_day(date(2025, 1, 27)) is True
    assert not any(CAL.is_working_day(date(2025, 1, 28) + timedelta(days=n)) for n in range(8))
    assert CAL.is_working_day(date(2025, 2, 5)) is True
    assert CAL.is_working_day(date(2025, 2, 8)) is True
    assert CAL.is_working_day(date(2025, 2, 9)) is False


def test_national_day_2024():
    # 10月1日至7日放假调休，共7天。9月29日（星期日）、10月12日（星期六）上班。
    assert CAL.is_working_day(date(2024, 9, 28)) is False
    assert CAL.is_working_day(date(2024, 9, 29)) is True
    assert not any(CAL.is_working_day(date(2024, 10, d)) for d in range(1, 8))
    assert CAL.is_working_day(date(2024, 10, 8)) is True
    assert CAL.is_working_day(date(2024, 10, 12)) is True
    assert CAL.is_working_day(date(2024, 10, 13)) is False


def test_a_datetime_is_judged_by_its_local_date():
    # 2024-02-03 20:00 UTC is already Sunday 4 Feb 04:00 in Shanghai, a make-up day.
    assert CAL.is_working_day(datetime(2024, 2, 3, 20, tzinfo=timezone.utc)) is True


# --- adding business time ----------------------------------------------------

def test_spring_festival_week_2024_is_skipped_and_the_makeup_sunday_counts():
    # Fri 9 Feb 17:00-18:00 is 1 h; 10-17 Feb off; Sun 18 Feb is a make-up day: 09:00 + 1 h.
    assert CAL.add_business_time(at(2024, 2, 9, 17), 2 * HOUR) == at(2024, 2, 18, 10)
    # Saturday 3 Feb is off, Sunday 4 Feb a make-up day.
    assert CAL.add_business_time(at(2024, 2, 3, 10), HOUR) == at(2024, 2, 4, 10)


def test_spring_festival_2025_budget_ending_at_closing_time_ends_then():
    # Mon 27 Jan 16-18 = 2 h; 28 Jan-4 Feb off; Wed 5 Feb 09-12 + 13-18 = 8 h -> 18:00 sharp.
    assert CAL.add_business_time(at(2025, 1, 27, 16), 10 * HOUR) == at(2025, 2, 5, 18)


def test_national_day_2025_golden_week():
    # Tue 30 Sep 17-18 = 1 h; 1-8 Oct off (国庆 + 中秋); Thu 9 Oct 8 h; Fri 10 Oct 09:00 + 1 h.
    assert CAL.add_business_time(at(2025, 9, 30, 17), 10 * HOUR) == at(2025, 10, 10, 10)
    # Working days 27 Sep-12 Oct: Sun 28 Sep, 29, 30 Sep, 9, 10 Oct, Sat 11 Oct = 6 days.
    assert CAL.business_time_between(at(2025, 9, 27, 0), at(2025, 10, 13, 0)) == 6 * 8 * HOUR


@pytest.mark.parametrize("start, expected", [
    (at(2024, 3, 4, 7), at(2024, 3, 4, 10)),  # Monday before opening
    (at(2024, 3, 4, 18, 30), at(2024, 3, 5, 10)),  # Monday after closing
    (at(2024, 3, 9, 11), at(2024, 3, 11, 10)),  # Saturday: next opening is Monday
    (at(2024, 3, 4, 12, 30), at(2024, 3, 4, 14)),  # during lunch: clock starts at 13:00
])
def test_a_start_outside_working_hours_begins_at_the_next_opening(start, expected):
    assert CAL.add_business_time(start, HOUR) == expected


def test_lunch_break_is_not_counted():
    assert CAL.add_business_time(at(2024, 3, 5, 11), 2 * HOUR) == at(2024, 3, 5, 14)
    assert CAL.business_time_between(at(2024, 3, 5, 11, 30), at(2024, 3, 5, 13, 30)) == HOUR


def test_a_span_of_weeks():
    # 4-29 March 2024: four Monday-Friday weeks, no holiday -> 20 days x 8 h.
    assert CAL.business_time_between(at(2024, 3, 4, 9), at(2024, 3, 29, 18)) == 160 * HOUR
    assert CAL.add_business_time(at(2024, 3, 4, 9), 160 * HOUR) == at(2024, 3, 29, 18)


def test_a_whole_year_2025_has_248_working_days():
    # 261 weekdays - 18 weekday holidays (元旦 1, 春节 6, 清明 1, 劳动节 3, 端午 1, 国庆中秋 6)
    # + 5 make-up weekend days (26 Jan, 8 Feb, 27 Apr, 28 Sep, 11 Oct) = 248.
    assert CAL.business_time_between(at(2025, 1, 1, 0), at(2026, 1, 1, 0)) == 248 * 8 * HOUR


def test_zero_duration_and_empty_or_reversed_spans():
    assert CAL.add_business_time(at(2024, 3, 9, 11), timedelta(0)) == at(2024, 3, 9, 11)
    assert CAL.business_time_between(at(2024, 3, 5, 15), at(2024, 3, 5, 10)) == timedelta(0)
    with pytest.raises(ValueError):
        CAL.add_business_time(at(2024, 3, 5, 15), -HOUR)


def test_results_are_in_the_calendar_zone_whatever_the_input_zone():
    start = datetime(2024, 3, 4, 1, tzinfo=timezone.utc)  # 09:00 in Shanghai
    due = CAL.add_business_time(start, HOUR)
    assert due == at(2024, 3, 4, 10) and due.tzinfo == SHANGHAI


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add_business_time(datetime(2024, 3, 4, 9), HOUR)


# --- windows: is a moment open, and when does it next open ------------------------------

@pytest.mark.parametrize("moment, opens", [
    (at(2024, 3, 19, 7), at(2024, 3, 19, 9)),  # Tuesday before opening
    (at(2024, 3, 19, 9), at(2024, 3, 19, 9)),  # the opening instant is open
    (at(2024, 3, 19, 15, 30), at(2024, 3, 19, 15, 30)),  # open: the moment itself
    (at(2024, 3, 19, 20), at(2024, 3, 20, 9)),  # the closing instant is not
    (at(2024, 3, 15, 20, 30), at(2024, 3, 18, 9)),  # Friday evening: Monday morning
    (at(2024, 3, 16, 12), at(2024, 3, 18, 9)),  # Saturday noon: Monday morning
])
def test_the_calling_window_opens_on_working_days(moment, opens):
    assert CALLING.next_open(moment) == opens
    assert CALLING.is_open(moment) is (moment == opens)


def test_a_break_is_not_open_and_the_window_reopens_after_it():
    assert CAL.is_open(at(2024, 3, 19, 11, 59)) is True
    assert CAL.is_open(at(2024, 3, 19, 12)) is False
    assert CAL.next_open(at(2024, 3, 19, 12, 30)) == at(2024, 3, 19, 13)


def test_national_day_2024_keeps_the_window_shut_from_1_to_7_october():
    assert CALLING.is_open(at(2024, 9, 29, 10)) is True  # make-up Sunday
    assert CALLING.next_open(at(2024, 9, 30, 20)) == at(2024, 10, 8, 9)
    assert not any(CALLING.is_open(at(2024, 10, day, 10)) for day in range(1, 8))


def test_a_makeup_saturday_opens_the_window_and_the_sunday_after_does_not():
    # 10月12日（星期六）上班 after National Day 2024.
    assert CALLING.next_open(at(2024, 10, 11, 20, 30)) == at(2024, 10, 12, 9)
    assert CALLING.is_open(at(2024, 10, 12, 15)) is True
    assert CALLING.next_open(at(2024, 10, 12, 20)) == at(2024, 10, 14, 9)


def test_the_window_in_a_customers_zone_follows_their_local_clock():
    # Tue 5 Mar 10:00 in Shanghai is Mon 4 Mar 21:00 in New York: closed there until Tue 09:00 EST.
    opens = CALLING_NEW_YORK.next_open(at(2024, 3, 5, 10))
    assert opens == in_new_york(2024, 3, 5, 9) == at(2024, 3, 5, 22)
    assert opens.tzinfo == NEW_YORK
    # Tue 5 Mar 08:00 in Shanghai is Mon 4 Mar 19:00 in New York: open there, closed in Shanghai.
    assert CALLING_NEW_YORK.is_open(at(2024, 3, 5, 8)) is True
    assert CALLING.is_open(at(2024, 3, 5, 8)) is False
    assert (CALLING_NEW_YORK.day_start, CALLING_NEW_YORK.day_end, CALLING_NEW_YORK.breaks) == (time(9), time(20), ())


def test_holidays_fall_on_the_local_date_of_the_customers_zone():
    # 1 Oct 2024 07:30 in Shanghai (National Day) is still Monday 30 Sep 19:30 in New York.
    moment = at(2024, 10, 1, 7, 30)
    assert CALLING.is_working_day(moment) is False
    assert CALLING_NEW_YORK.is_working_day(moment) is True and CALLING_NEW_YORK.is_open(moment) is True
    assert CALLING_NEW_YORK.next_open(in_new_york(2024, 9, 30, 20)) == in_new_york(2024, 10, 8, 9)


def test_daylight_saving_starts_over_a_weekend_in_new_york():
    # Clocks go forward on Sun 10 Mar 2024: 09:00 is 14:00 UTC before, 13:00 UTC after.
    assert CALLING_NEW_YORK.next_open(in_new_york(2024, 3, 1, 20)) == datetime(2024, 3, 4, 14, tzinfo=timezone.utc)
    monday = CALLING_NEW_YORK.next_open(in_new_york(2024, 3, 8, 20))
    assert monday == in_new_york(2024, 3, 11, 9) == datetime(2024, 3, 11, 13, tzinfo=timezone.utc)
    # Friday and Monday are 11 working hours each; 82 clock hours lie between (83 on the wall, one skipped).
    assert CALLING_NEW_YORK.business_time_between(in_new_york(2024, 3, 8, 9), in_new_york(2024, 3, 11, 20)) \
        == 22 * HOUR


def test_business_hours_added_across_the_end_of_daylight_saving():
    # Clocks go back on Sun 3 Nov 2024: Fri 19:00-20:00 EDT is 1 h, Mon 09:00 EST + 1 h.
    due = CALLING_NEW_YORK.add_business_time(in_new_york(2024, 11, 1, 19), 2 * HOUR)
    assert due == in_new_york(2024, 11, 4, 10) == datetime(2024, 11, 4, 15, tzinfo=timezone.utc)


def test_an_unknown_customer_zone_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as refused:
        CALLING.in_zone("Asia/Beijing")
    assert list(refused.value.fields) == ["timezone"]


def test_naive_moments_are_refused_by_the_window():
    with pytest.raises(ValueError, match="timezone-aware"):
        CALLING.next_open(datetime(2024, 3, 4, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        CALLING.is_open(datetime(2024, 3, 4, 9))


# --- waiting on the customer ---------------------------------------------------

FRIDAY_10 = at(2024, 3, 15, 10)
WAITING_OVER_WEEKEND = [(at(2024, 3, 15, 16), at(2024, 3, 18, 11))]  # Fri 16:00 -> Mon 11:00


def test_a_wait_across_the_weekend_moves_the_deadline_by_the_paused_business_time_only():
    # Paused business time: Fri 16-18 (2 h) + Mon 09-11 (2 h) = 4 h; the weekend was never counted.
    assert CAL.business_time_between(*WAITING_OVER_WEEKEND[0]) == 4 * HOUR
    # Without the pause: Fri 10-12, 13-18 (7 h), Mon 09-10 -> Mon 10:00.
    assert CAL.add_business_time(FRIDAY_10, 8 * HOUR) == at(2024, 3, 18, 10)
    # With it: Fri 10-12, 13-16 (5 h), Mon 11-12 (1 h), 13-15 (2 h) -> Mon 15:00 = Mon 10:00 + 4 business hours.
    due = CAL.add_business_time(FRIDAY_10, 8 * HOUR, WAITING_OVER_WEEKEND)
    assert due == at(2024, 3, 18, 15)
    assert CAL.business_time_between(FRIDAY_10, due, WAITING_OVER_WEEKEND) == 8 * HOUR


def test_a_wait_still_open_stops_the_clock():
    still_waiting = [(at(2024, 3, 15, 16), None)]
    assert CAL.business_time_between(FRIDAY_10, at(2024, 3, 18, 12), still_waiting) == 5 * HOUR
    assert CAL.add_business_time(FRIDAY_10, 4 * HOUR, still_waiting) == at(2024, 3, 15, 15)
    assert CAL.add_business_time(FRIDAY_10, 8 * HOUR, still_waiting) is None


def test_overlapping_waits_are_counted_once():
    waits = [(at(2024, 3, 15, 14), at(2024, 3, 15, 16)), (at(2024, 3, 15, 15), at(2024, 3, 15, 17))]
    assert merge_pauses(waits) == [(at(2024, 3, 15, 14), at(2024, 3, 15, 17))]
    # Fri 10-18 is 7 h, less 14-17 = 4 h.
    assert CAL.business_time_between(FRIDAY_10, at(2024, 3, 15, 18), waits) == 4 * HOUR


def test_a_wait_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="before it starts"):
        merge_pauses([(at(2024, 3, 15, 16), at(2024, 3, 15, 15))])


# --- configuration ---------------------------------------------------------------

def test_working_hours_are_configurable():
    early = WorkingCalendar(day_start=time(8, 30), day_end=time(17, 30), breaks=())
    assert early.add_business_time(at(2024, 3, 4, 8), 9 * HOUR) == at(2024, 3, 4, 17, 30)


@pytest.mark.parametrize("kwargs, field", [
    ({"day_start": time(18), "day_end": time(9)}, "day_end"),
    ({"breaks": ((time(8), time(10)),)}, "breaks"),
    ({"breaks": ((time(13), time(12)),)}, "breaks"),
    ({"breaks": ((time(11), time(13)), (time(12), time(14)))}, "breaks"),
    ({"breaks": ((time(9), time(18)),)}, "breaks"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
])
def test_bad_working_hours_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValidationError) as refused:
        WorkingCalendar(**kwargs)
    assert list(refused.value.fields) == [field]
