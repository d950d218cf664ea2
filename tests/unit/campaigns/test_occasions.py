"""Holiday and birthday dates over several years, from the calendars the packages compute."""

from datetime import date

import pytest

from services.campaigns.occasions import holiday_date, occurrence_of
from shared.birthdays import birthday_on, celebrated_on, lunar_to_solar

# Published dates (State Council notices and almanacs) the packages must agree with.
LUNAR_FESTIVALS = {
    ("spring_festival", 2025): date(2025, 1, 29), ("spring_festival", 2026): date(2026, 2, 17),
    ("spring_festival", 2027): date(2027, 2, 6), ("spring_festival", 2028): date(2028, 1, 26),
    ("lantern", 2026): date(2026, 3, 3), ("dragon_boat", 2025): date(2025, 5, 31),
    ("dragon_boat", 2026): date(2026, 6, 19), ("qixi", 2026): date(2026, 8, 19),
    ("mid_autumn", 2025): date(2025, 10, 6), ("mid_autumn", 2026): date(2026, 9, 25),
    ("double_ninth", 2026): date(2026, 10, 18),
}
SOLAR = {("new_year", 2027): date(2027, 1, 1), ("national_day", 2026): date(2026, 10, 1),
         ("labour_day", 2028): date(2028, 5, 1), ("qingming", 2026): date(2026, 4, 5),
         ("qingming", 2028): date(2028, 4, 4)}


@pytest.mark.parametrize(("holiday", "year"), sorted({**LUNAR_FESTIVALS, **SOLAR}))
def test_holidays_fall_on_their_published_dates(holiday, year):
    assert holiday_date(holiday, year) == {**LUNAR_FESTIVALS, **SOLAR}[holiday, year]


def test_the_occurrence_names_the_year_or_the_day():
    assert occurrence_of("holiday", "mid_autumn", date(2026, 9, 25)) == "mid_autumn:2026"
    assert occurrence_of("birthday", None, date(2027, 2, 28)) == "birthday:2027-02-28"


def test_29_february_falls_on_28_february_or_1_march_in_other_years():
    assert birthday_on("2000-02-29", "gregorian", 2027) == [date(2027, 2, 28)]
    assert birthday_on("2000-02-29", "gregorian", 2027, feb29="mar1") == [date(2027, 3, 1)]
    assert birthday_on("2000-02-29", "gregorian", 2028) == [date(2028, 2, 29)]
    assert "02-29" in celebrated_on(date(2027, 2, 28)).gregorian
    assert "02-29" not in celebrated_on(date(2028, 2, 28)).gregorian
    assert "02-29" in celebrated_on(date(2027, 3, 1), feb29="mar1").gregorian


def test_a_lunar_birthday_is_converted_per_year():
    # 农历正月二十: a different gregorian day each year
    assert [birthday_on("1990-01-20", "lunar", year) for year in (2026, 2027)] == [[date(2026, 3, 8)],
                                                                                   [date(2027, 2, 25)]]


def test_in_a_year_with_a_leap_month_the_birthday_is_in_the_regular_month():
    # 2023 has a leap second month (闰二月): 二月初十 is 1 March, 闰二月初十 is 31 March
    assert birthday_on("1990-02-10", "lunar", 2023) == [date(2023, 3, 1)]
    assert celebrated_on(date(2023, 3, 31)).lunar == ()  # a leap month day is nobody's lunar birthday
    assert "02-10" in celebrated_on(date(2023, 3, 1)).lunar


def test_a_30th_in_a_month_of_29_days_falls_on_the_29th():
    # the second lunar month of 2026 has 29 days; a birthday on its 30th falls on its 29th
    twenty_ninth = lunar_to_solar(2026, 2, 29)
    assert lunar_to_solar(2026, 2, 30) == twenty_ninth
    assert (lunar_to_solar(2027, 2, 30) - lunar_to_solar(2027, 2, 29)).days == 1  # 2027's has a 30th
    assert set(celebrated_on(twenty_ninth).lunar) == {"02-29", "02-30"}
    assert celebrated_on(lunar_to_solar(2027, 2, 29)).lunar == ("02-29",)  # 2027's second month has a 30th


def test_a_lunar_birthday_can_fall_twice_in_one_gregorian_year_or_not_at_all():
    years = {year: birthday_on("1980-12-01", "lunar", year) for year in range(2020, 2035)}
    assert any(len(days) == 2 for days in years.values()) or any(not days for days in years.values())


def test_no_birthday_before_the_customer_was_born():
    assert birthday_on("2020-05-01", "gregorian", 2020) == []
    assert birthday_on("2020-05-01", "lunar", 2020) == []
